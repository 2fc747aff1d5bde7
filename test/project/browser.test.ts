import { existsSync } from 'node:fs'
import { chromium, type Browser, type Page } from 'playwright-core'
import t from 'tap'
import { buildExample } from '../../example/app.js'
import { servePage } from '../../example/page.js'
import { record } from '../helpers/events.js'

// The demo page (npm start) in a real headless Chromium, Debian's (.ci/run installs it), driven by playwright-core,
// over fastify-link-server/client: two users link, see each other, chat; one comes back after it was away and keeps
// its user and what it missed, once;
// one closes its page and the other sees it unlinked. The channel picker: each channel is a room of its own.

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

/** A new tab of its own (its own sessionStorage), with the page opened as `username` (in `room`, if given). */
async function open (username: string, room?: string): Promise<Page> {
  const page = await (await browser.newContext()).newPage()
  await page.goto(`http://127.0.0.1:${port}/?username=${username}${room === undefined ? '' : `&room=${room}`}`)
  return page
}

/** The channels a page's picker lists, and the one it is in. */
async function channels (page: Page): Promise<Array<[string | null, boolean]>> {
  return page.locator('[data-channel]').evaluateAll(links => links.map(link => [link.getAttribute('data-channel'), link.hasAttribute('aria-current')]))
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
  t.equal(await alice.locator('#status').textContent(), 'linked as alice in #general')

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
  t.strictSame(app.linkServer.room('general').getUsers(), [{ username: 'alice', isLinked: false }, { username: 'bob', isLinked: true }])
  // A link after the user was away replays what it missed, and no more: the page keeps where its client was in
  // sessionStorage with its lines, and the client names it when it links again (the session extension).
  t.strictSame(events.filter(([event]) => event === 'roomStart'), [['roomStart', 'room:general']], 'the channel general started with alice')
  const lifecycle = events.filter(([event]) => event !== 'message' && event !== 'roomStart')
  t.strictSame(lifecycle.map(([event, username, info]) => event === 'link'
    ? [event, username, (info as { replay: unknown }).replay]
    : [event, username]), [
    ['join', 'alice'], ['link', 'alice', { replayed: 0, lost: 0 }],
    ['join', 'bob'], ['link', 'bob', { replayed: 0, lost: 0 }],
    ['unlink', 'bob'], ['link', 'bob', { replayed: 1, lost: 0 }], // away, and back: the line it missed
    ['unlink', 'bob'], ['link', 'bob', { replayed: 0, lost: 0 }], // the reload
    ['unlink', 'alice']
  ])
  t.ok(lifecycle.every(event => event.at(-1) === 'room:general'), 'every event of the channel general came with its room')
})

t.test('the channel picker: each channel is a room of its own; a page lists the channels, and moves to one picked or typed', async t => {
  const dave = await open('dave')
  const erin = await open('erin', 'games')
  await until(() => presence(erin), [['erin', 'true']])
  t.equal(await erin.locator('#status').textContent(), 'linked as erin in #games')
  await until(() => presence(dave), [['alice', 'false'], ['bob', 'true'], ['dave', 'true']]) // general, as the test above left it
  await until(() => channels(dave), [['games', false], ['general', true]])
  await erin.locator('[data-chat]').fill('only in games')
  await erin.locator('[data-chat]').press('Enter')
  await until(() => lines(erin), ['erin: only in games'])
  t.strictSame(await lines(dave), [], 'a line of games is not heard in general')

  await dave.locator('[data-channel="games"]').click()
  await until(() => presence(erin), [['dave', 'true'], ['erin', 'true']])
  await until(() => presence(dave), [['dave', 'true'], ['erin', 'true']])
  t.equal(await dave.locator('#status').textContent(), 'linked as dave in #games')
  await until(() => channels(dave), [['games', true], ['general', false]])

  await erin.locator('#channel input').fill('random')
  await erin.locator('#channel input').press('Enter')
  await until(async () => erin.locator('#status').textContent(), 'linked as erin in #random')
  await until(() => presence(erin), [['erin', 'true']])
  t.strictSame(await app.linkServer.getRooms(), ['games', 'general', 'random'])
})
