import t from 'tap'
import { connect, inject } from '../helpers/clients.js'
import { record } from '../helpers/events.js'
import { frames } from '../helpers/frames.js'
import { eventually, timerCount } from '../helpers/waits.js'
import type { TestBackend } from '../helpers/app.js'

/** The link-race tests, on `backend`. */
export default function suite ({ build }: TestBackend): void {
  t.test('two connections racing to link one new user during async authentication: one wins, one is rejected', async t => {
    const app = await build(t)
    const releases: Array<() => void> = []
    app.linkServer.on('authenticate', (_username, _info, _reject, markAsync) => {
      markAsync(() => new Promise<void>(resolve => { releases.push(resolve) }))
    })
    const events = record(app)
    const first = await inject(app)
    const second = await inject(app)
    first.requestLink('alice')
    second.requestLink('alice')
    t.strictSame(await second.take(1), [frames.rejected('user alice is already linked to a connection')])
    t.equal(releases.length, 1, 'only the first link reached authentication')
    releases[0]()
    t.strictSame(await first.take(3), [frames.accepted, frames.joined('alice'), frames.linked('alice')])
    t.strictSame(events, [['join', 'alice'], ['link', 'alice']])
    t.strictSame(app.linkServer.getUsers(), [{ username: 'alice', isLinked: true }])
  })

  t.test('a rejected authentication frees the user for the next link', async t => {
    const app = await build(t)
    let attempt = 0
    app.linkServer.on('authenticate', (_username, _info, reject, markAsync) => {
      attempt++
      if (attempt === 1) {
        markAsync(async () => { reject('wrong password') })
      }
    })
    const first = await inject(app)
    first.requestLink('alice')
    t.strictSame(await first.take(1), [frames.rejected('wrong password')])
    const second = await inject(app)
    t.strictSame(await second.linked('alice', 3), [frames.accepted, frames.joined('alice'), frames.linked('alice')])
  })

  t.test('a connection that closes while its authentication is pending is never linked and sent nothing', async t => {
    const app = await build(t, { authTimeoutMilliseconds: 60_000 })
    let release!: () => void
    app.linkServer.on('authenticate', (username, _info, _reject, markAsync) => {
      if (username === 'alice') {
        markAsync(() => new Promise<void>(resolve => { release = resolve }))
      }
    })
    const events = record(app)
    const watcher = await inject(app)
    await watcher.linked('watcher', 3)
    const leaving = await inject(app)
    const received: string[] = []
    leaving.ws.on('message', data => received.push(data.toString()))
    leaving.requestLink('alice')
    await eventually(() => release !== undefined, () => 'authenticate was not called') // a claim may be a Redis round trip
    const closed = leaving.closed()
    leaving.ws.close()
    await closed
    release()
    release = undefined as unknown as typeof release
    t.strictSame(await watcher.settle(), [], 'nobody heard of alice')
    t.strictSame(received, [])
    t.strictSame(app.linkServer.getUsers(), [{ username: 'watcher', isLinked: true }])
    t.strictSame(events, [['join', 'watcher'], ['link', 'watcher']])
    const again = await inject(app)
    again.requestLink('alice')
    await again.settle()
    await eventually(() => release !== undefined, () => 'authenticate was not called') // a claim may be a Redis round trip
    release()
    t.strictSame(await again.take(5), [
      frames.accepted,
      frames.joined('watcher'), frames.linked('watcher'),
      frames.joined('alice'), frames.linked('alice')
    ], 'alice was freed by the close')
  })

  t.test('frames sent while authentication is pending are handled in arrival order after the decision', async t => {
    const app = await build(t)
    let release!: () => void
    app.linkServer.on('authenticate', (username, _info, _reject, markAsync) => {
      if (username === 'alice') {
        markAsync(() => new Promise<void>(resolve => { release = resolve }))
      }
    })
    const events = record(app)
    const client = await inject(app)
    client.requestLink('alice')
    client.send({ type: 'chat/say', payload: 1 })
    client.requestLink('bob')
    client.send({ type: 'chat/say', payload: 2 })
    client.send({ type: 'krmx/unlink' })
    client.requestLink('bob')
    client.send({ type: 'chat/say', payload: 3 })
    await client.settle()
    t.strictSame(events, [], 'nothing happens before the decision')
    await eventually(() => release !== undefined, () => 'authenticate was not called') // a claim may be a Redis round trip
    release()
    t.strictSame(await client.take(3), [frames.accepted, frames.joined('alice'), frames.linked('alice')])
    t.strictSame(await client.take(1), [frames.unlinked('alice')], 'the second link frame unlinks alice')
    t.strictSame(await client.take(1), [frames.rejected('unlinked connection')], 'the message after it is refused')
    t.strictSame(await client.take(1), [frames.rejected('unlinked connection')], 'so is the unlink')
    t.strictSame(await client.take(4), [frames.accepted, frames.joined('alice'), frames.joined('bob'), frames.linked('bob')])
    t.strictSame(await client.settle(), [])
    t.strictSame(events, [
      ['join', 'alice'], ['link', 'alice'],
      ['message', 'alice', { type: 'chat/say', payload: 1 }],
      ['unlink', 'alice'],
      ['join', 'bob'], ['link', 'bob'],
      ['message', 'bob', { type: 'chat/say', payload: 3 }]
    ])
  })

  t.test('a user kicked while its relink is authenticated is joined again when the link is accepted', async t => {
    const app = await build(t)
    await app.linkServer.join('alice')
    let release!: () => void
    const infos: boolean[] = []
    app.linkServer.on('authenticate', (_username, info, _reject, markAsync) => {
      infos.push(info.isNewUser)
      markAsync(() => new Promise<void>(resolve => { release = resolve }))
    })
    const events = record(app)
    const client = await inject(app)
    client.requestLink('alice')
    await client.settle()
    await app.linkServer.kick('alice')
    await eventually(() => release !== undefined, () => 'authenticate was not called') // a claim may be a Redis round trip
    release()
    t.strictSame(await client.take(3), [frames.accepted, frames.joined('alice'), frames.linked('alice')])
    t.strictSame(infos, [false])
    t.strictSame(events, [['leave', 'alice'], ['join', 'alice'], ['link', 'alice']])
  })

  t.test('a user kicked while its relink is authenticated is refused when new users are not accepted', async t => {
    const app = await build(t, { acceptNewUsers: false })
    await app.linkServer.join('alice')
    let release!: () => void
    app.linkServer.on('authenticate', (_username, _info, _reject, markAsync) => {
      markAsync(() => new Promise<void>(resolve => { release = resolve }))
    })
    const client = await inject(app)
    client.requestLink('alice')
    await client.settle()
    await app.linkServer.kick('alice')
    await eventually(() => release !== undefined, () => 'authenticate was not called') // a claim may be a Redis round trip
    release()
    t.strictSame(await client.take(1), [frames.rejected('server is not accepting new users')])
    t.strictSame(app.linkServer.getUsers(), [])
  })

  t.test('a user joined by the application while a link for it is authenticated is linked, not joined twice', async t => {
    const app = await build(t)
    let release!: () => void
    app.linkServer.on('authenticate', (_username, _info, _reject, markAsync) => {
      markAsync(() => new Promise<void>(resolve => { release = resolve }))
    })
    const events = record(app)
    const client = await inject(app)
    client.requestLink('alice')
    await client.settle()
    await app.linkServer.join('alice')
    await eventually(() => release !== undefined, () => 'authenticate was not called') // a claim may be a Redis round trip
    release()
    t.strictSame(await client.take(3), [frames.accepted, frames.joined('alice'), frames.linked('alice')])
    t.strictSame(events, [['join', 'alice'], ['link', 'alice']])
  })

  t.test('a socket that closes during authentication ends it at once: its timer is cleared and the user is free', async t => {
    const app = await build(t, { listen: true, authTimeoutMilliseconds: 60_000 })
    let attempts = 0
    app.linkServer.on('authenticate', (_username, _info, _reject, markAsync) => {
      attempts++
      if (attempts === 1) {
        markAsync(() => new Promise(() => {}))
      }
    })
    const before = timerCount()
    const leaving = await connect(app)
    leaving.requestLink('alice')
    // Not settle(): on Redis the claim is a round trip, and a socket closed before it is answered is never
    // authenticated, so the next link would be the first one authenticate sees (and hang in its markAsync).
    await eventually(() => attempts === 1, () => 'authenticate was not called')
    t.equal(timerCount(), before + 1, 'the authentication timer runs')
    leaving.ws.terminate()
    while (timerCount() > before) {
      await new Promise(resolve => setImmediate(resolve))
    }
    t.equal(timerCount(), before, 'the timer is cleared when the server sees the close')
    const next = await connect(app)
    t.strictSame(await next.linked('alice', 3), [frames.accepted, frames.joined('alice'), frames.linked('alice')])
  })
}
