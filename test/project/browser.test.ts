import { existsSync } from 'node:fs'
import { chromium, type Browser, type Page } from 'playwright-core'
import t from 'tap'
import { buildExample } from '../../example/app.js'
import { servePage } from '../../example/page.js'
import { record } from '../helpers/events.js'

// The demo page (npm start) in a real headless Chromium, Debian's (.ci/run installs it), driven by playwright-core:
// two users link, see each other, chat; one comes back after it was away and keeps its user and what it missed;
// one closes its page and the other sees it unlinked.

const executablePath = '/usr/bin/chromium'
if (!existsSync(executablePath)) {
  throw new Error(`${executablePath} is missing: apt-get install chromium (.ci/run does)`)
}
t.setTimeout(120_000)

const app = await buildExample({ logger: false })
await servePage(app)
await app.listen({ port: 0, host: '127.0.0.1' })
const { port } = app.server.address() as { port: number }
const browser: Browser = await chromium.launch({ executablePath, headless: true, args: ['--no-sandbox'] })
t.teardown(async () => {
  await browser.close()
  await app.close()
})

/** A new tab of its own (its own sessionStorage), with the page opened as `username`. */
async function open (username: string): Promise<Page> {
  const page = await (await browser.newContext()).newPage()
  await page.goto(`http://127.0.0.1:${port}/?username=${username}`)
  return page
}

/** The presence list of a page, as its elements say it. */
async function presence (page: Page): Promise<Array<[string | null, string | null]>> {
  return page.locator('[data-user]').evaluateAll(items => items.map(item => [item.getAttribute('data-user'), item.getAttribute('data-linked')]))
}

async function lines (page: Page): Promise<string[]> {
  return page.locator('[data-message]').allTextContents()
}

/** Waits until `read()` answers `expected` (playwright polls it), and fails naming what it answered last. */
async function until<T> (read: () => Promise<T>, expected: T): Promise<void> {
  const wanted = JSON.stringify(expected)
  let last: unknown
  const deadline = Date.now() + 15_000
  while (JSON.stringify(last = await read()) !== wanted) {
    if (Date.now() > deadline) {
      throw new Error(`expected ${wanted}, saw ${JSON.stringify(last)}`)
    }
    await new Promise(resolve => setTimeout(resolve, 25))
  }
}

t.test('two pages link as two users, see each other and chat; one is away and comes back as itself; one closes', async t => {
  const events = record(app)
  const alice = await open('alice')
  const bob = await open('bob')
  await until(() => presence(alice), [['alice', 'true'], ['bob', 'true']])
  await until(() => presence(bob), [['alice', 'true'], ['bob', 'true']])
  t.equal(await alice.locator('#status').textContent(), 'linked as alice')

  await alice.locator('[data-chat]').fill('hello bob')
  await alice.locator('[data-chat]').press('Enter')
  await until(() => lines(bob), ['alice: hello bob'])
  await bob.locator('[data-chat]').fill('hi alice')
  await bob.locator('[data-chat]').press('Enter')
  await until(() => lines(alice), ['alice: hello bob', 'bob: hi alice'])
  await until(() => lines(bob), ['alice: hello bob', 'bob: hi alice'])
  t.equal(await alice.locator('[data-chat]').inputValue(), '', 'the box is emptied when its line is sent')

  // Bob is away (its tab went elsewhere): unlinked, still there; what alice says meanwhile is kept for it.
  const unlinked = new Promise(resolve => app.linkServer.once('unlink', resolve))
  await bob.goto('about:blank')
  t.equal(await unlinked, 'bob')
  await until(() => presence(alice), [['alice', 'true'], ['bob', 'false']])
  await alice.locator('[data-chat]').fill('are you there?')
  await alice.locator('[data-chat]').press('Enter')
  await until(() => lines(alice), ['alice: hello bob', 'bob: hi alice', 'alice: are you there?'])
  await bob.goBack()
  await until(() => presence(bob), [['alice', 'true'], ['bob', 'true']])
  await until(() => lines(bob), ['alice: hello bob', 'bob: hi alice', 'alice: are you there?'])

  // A reload keeps the user too, and its lines.
  await bob.reload()
  await until(() => presence(alice), [['alice', 'true'], ['bob', 'true']])
  await until(() => lines(bob), ['alice: hello bob', 'bob: hi alice', 'alice: are you there?'])

  // A refused link is not tried again: the page says why and stays put.
  const admin = await open('admin')
  await until(async () => admin.locator('#status').textContent(), 'not linked: admin is reserved')

  await alice.close()
  await until(() => presence(bob), [['alice', 'false'], ['bob', 'true']])
  t.strictSame(app.linkServer.getUsers(), [{ username: 'alice', isLinked: false }, { username: 'bob', isLinked: true }])
  // A link after the user was away replays what it missed, and what its connection had not confirmed yet (the
  // last 100 ms or so, up to all three lines): at least the one; the page drops a line it has. The reload's may replay nothing or more.
  const lifecycle = events.filter(([event]) => event !== 'message')
  const back = (lifecycle[5][2] as { replay: { replayed: number, lost: number } }).replay
  t.ok(back.replayed >= 1 && back.replayed <= 3 && back.lost === 0, `replayed ${JSON.stringify(back)}`)
  t.strictSame(lifecycle.map(([event, username, info], index) => event === 'link' && index < 4
    ? [event, username, (info as { replay: unknown }).replay]
    : [event, username]), [
    ['join', 'alice'], ['link', 'alice', { replayed: 0, lost: 0 }],
    ['join', 'bob'], ['link', 'bob', { replayed: 0, lost: 0 }],
    ['unlink', 'bob'], ['link', 'bob'], // away, and back
    ['unlink', 'bob'], ['link', 'bob'], // the reload
    ['unlink', 'alice']
  ])
})
