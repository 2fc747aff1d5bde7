import { existsSync } from 'node:fs'
import type { FastifyInstance } from 'fastify'
import { chromium, type Browser, type Page } from 'playwright-core'
import t from 'tap'
import { buildExample } from '../../example/app.js'
import { servePage } from '../../example/page.js'
import { RedisServer } from '../helpers/redis-server.js'

// The demo page in a real headless Chromium over a cluster of two instances on a real Redis: alice's page is served
// by (and linked to) one instance, bob's by the other. While they chat, bob's connection is cut and alice's instance
// is restarted; each page shows every line exactly once, in the order the cluster delivered it (the page does not
// drop lines of its own: fastify-link-server/client hands it each message once).

const executablePath = '/usr/bin/chromium'
if (!existsSync(executablePath)) {
  throw new Error(`${executablePath} is missing: apt-get install chromium (.ci/run does)`)
}
t.setTimeout(120_000)

const redis = await RedisServer.start(t)

/** An instance of the example on the shared Redis, serving the page, listening on `port` (0: any). */
async function instance (port = 0): Promise<FastifyInstance> {
  const app = await buildExample({ logger: false }, redis.url)
  await servePage(app)
  await app.listen({ port, host: '127.0.0.1' })
  return app
}

let a = await instance()
const b = await instance()
const portOf = (app: FastifyInstance): number => (app.server.address() as { port: number }).port
const portA = portOf(a)
const browser: Browser = await chromium.launch({ executablePath, headless: true, args: ['--no-sandbox'] })
t.teardown(async () => {
  await browser.close()
  await a.close()
  await b.close()
})

async function open (port: number, username: string): Promise<Page> {
  const page = await (await browser.newContext()).newPage()
  await page.goto(`http://127.0.0.1:${port}/?username=${username}`)
  return page
}

async function lines (page: Page): Promise<string[]> {
  return page.locator('[data-message]').allTextContents()
}

async function presence (page: Page): Promise<Array<[string | null, string | null]>> {
  return page.locator('[data-user]').evaluateAll(items => items.map(item => [item.getAttribute('data-user'), item.getAttribute('data-linked')]))
}

/** Waits until `read()` answers `expected`, and fails naming what it answered last. */
async function until<T> (read: () => Promise<T>, expected: T, timeoutMilliseconds = 20_000): Promise<void> {
  const wanted = JSON.stringify(expected)
  let last: unknown
  const deadline = Date.now() + timeoutMilliseconds
  while (JSON.stringify(last = await read()) !== wanted) {
    if (Date.now() > deadline) {
      throw new Error(`expected ${wanted}, saw ${JSON.stringify(last)}`)
    }
    await new Promise(resolve => setTimeout(resolve, 25))
  }
}

async function say (page: Page, text: string): Promise<void> {
  await page.locator('[data-chat]').fill(text)
  await page.locator('[data-chat]').press('Enter')
  await until(async () => page.locator('[data-chat]').inputValue(), '') // sent: the box is emptied only then
}

t.test('two pages on two instances chat while a connection is cut and an instance restarts: each shows every line once', async t => {
  const alice = await open(portA, 'alice')
  const bob = await open(portOf(b), 'bob')
  await until(() => presence(alice), [['alice', 'true'], ['bob', 'true']])
  await until(() => presence(bob), [['alice', 'true'], ['bob', 'true']])
  const said: string[] = []
  const both = async (): Promise<void> => {
    await until(() => lines(alice), said)
    await until(() => lines(bob), said)
  }

  await say(alice, 'a1')
  said.push('alice: a1')
  await say(bob, 'b1')
  said.push('bob: b1')
  await both()

  // bob's connection is cut (no close frame) right as alice speaks: the line reaches bob once, before or after.
  for (const socket of b.websocketServer.clients) {
    socket.terminate()
  }
  await say(alice, 'a2')
  said.push('alice: a2')
  await both()
  await until(() => presence(alice), [['alice', 'true'], ['bob', 'true']])
  await say(bob, 'b2')
  said.push('bob: b2')
  await both()

  // alice's instance restarts; bob speaks while alice is away: what alice missed comes once when she is back.
  await a.close()
  await until(() => presence(bob), [['alice', 'false'], ['bob', 'true']])
  await say(bob, 'b3')
  await say(bob, 'b4')
  said.push('bob: b3', 'bob: b4')
  await until(() => lines(bob), said)
  a = await instance(portA)
  await until(() => presence(alice), [['alice', 'true'], ['bob', 'true']])
  await until(() => lines(alice), said)
  await say(alice, 'a3')
  said.push('alice: a3')
  await both()
  t.strictSame([await lines(alice), await lines(bob)], [said, said], 'every line once, in order, on both pages')
  t.equal(await alice.locator('#status').textContent(), 'linked as alice in #general')
})
