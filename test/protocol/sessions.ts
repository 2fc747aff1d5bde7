import { createClient } from '@krmx/client'
import t from 'tap'
import WebSocket from 'ws'
import { connect, inject, RecordingClient, urlOf } from '../helpers/clients.js'
import { LogRecorder, next, record } from '../helpers/events.js'
import { frames } from '../helpers/frames.js'
import { eventually } from '../helpers/waits.js'
import type { TestBackend } from '../helpers/app.js'

/** The sessions tests, on `backend`. */
export default function suite ({ build }: TestBackend): void {
  // Sessions: the reconnection window, missed-message replay, link takeover and user data. Run on the in-memory
  // backend by test/protocol/memory-3.test.ts and on a one-node cluster by test/protocol/redis-3.test.ts;
  // test/cluster/sessions.test.ts runs them across nodes.

  const globals = globalThis as unknown as { WebSocket?: unknown }
  globals.WebSocket ??= WebSocket

  const say = (text: string): { type: string, payload: string } => ({ type: 'note/say', payload: text })

  t.test('reconnection window: an unlinked user that does not link again within it leaves by itself, once', async t => {
    const app = await build(t, { reconnectWindowMilliseconds: 150 })
    const events = record(app)
    const bob = await inject(app)
    await bob.linked('bob', 3)
    const alice = await inject(app)
    await alice.linked('alice', 5)
    await bob.take(2)
    const left = next(app, 'leave')
    alice.send({ type: 'krmx/unlink' })
    t.strictSame(await left, ['alice'])
    t.strictSame(await bob.take(2), [frames.unlinked('alice'), frames.left('alice')])
    t.strictSame(await alice.take(1), [frames.unlinked('alice')], 'its connection, unlinked, is not told')
    t.strictSame(events, [['join', 'bob'], ['link', 'bob'], ['join', 'alice'], ['link', 'alice'], ['unlink', 'alice'], ['leave', 'alice']])
    t.strictSame(app.linkServer.getUsers(), [{ username: 'bob', isLinked: true }])
  })

  t.test('reconnection window: a relink within it cancels it; a user made by join() is kept until its first link ends', async t => {
    const app = await build(t, { reconnectWindowMilliseconds: 150 })
    const events = record(app)
    await app.linkServer.join('seat')
    const alice = await inject(app)
    await alice.linked('alice', 4)
    alice.send({ type: 'krmx/unlink' })
    await alice.take(1)
    await alice.linked('alice', 4)
    // carol unlinks after alice relinked: by the time carol's window ends, alice's would have ended too.
    const carol = await inject(app)
    await carol.linked('carol', 6)
    const carolLeft = next(app, 'leave')
    carol.send({ type: 'krmx/unlink' })
    t.strictSame(await carolLeft, ['carol'])
    t.strictSame(events, [
      ['join', 'seat'], ['join', 'alice'], ['link', 'alice'], ['unlink', 'alice'], ['link', 'alice'],
      ['join', 'carol'], ['link', 'carol'], ['unlink', 'carol'], ['leave', 'carol']
    ])
    t.strictSame(app.linkServer.getUsers(), [{ username: 'seat', isLinked: false }, { username: 'alice', isLinked: true }])
  })

  t.test('reconnection window: a link being authenticated when it ends holds the user; refused, the user leaves then', async t => {
    const app = await build(t, { reconnectWindowMilliseconds: 100, authTimeoutMilliseconds: 60_000 })
    const held: { release?: (reason?: string) => void } = {}
    const releaseHeld = (reason?: string): void => held.release?.(reason)
    app.linkServer.on('authenticate', (_username, info, reject, markAsync) => {
      if (info.auth === 'hold') {
        markAsync(async () => {
          const reason = await new Promise<string | undefined>(resolve => { held.release = resolve })
          if (reason !== undefined) reject(reason)
        })
      }
    })
    const alice = await inject(app)
    await alice.linked('alice', 3)
    alice.send({ type: 'krmx/unlink' })
    await alice.take(1)
    const events = record(app)
    alice.requestLink('alice', { auth: 'hold' })
    await eventually(() => held.release !== undefined, () => 'no authentication')
    // carol unlinks after alice's window ended (it ends while her link is held): when carol leaves, alice is still there.
    const carol = await inject(app)
    await carol.linked('carol', 4)
    await new Promise(resolve => setTimeout(resolve, 120)) // alice's window ends while her link is pending
    carol.send({ type: 'krmx/unlink' })
    t.strictSame(await next(app, 'leave'), ['carol'])
    t.strictSame(app.linkServer.getUsers(), [{ username: 'alice', isLinked: false }], 'held by the pending link')
    const left = next(app, 'leave')
    releaseHeld('not now')
    t.strictSame(await left, ['alice'], 'the refused link gave it up: it leaves at once')
    t.strictSame(await alice.take(1), [frames.rejected('not now')])
    held.release = undefined
    const bob = await inject(app)
    await bob.linked('bob', 3)
    bob.send({ type: 'krmx/unlink' })
    await bob.take(1)
    bob.requestLink('bob', { auth: 'hold' })
    await eventually(() => held.release !== undefined, () => 'no authentication')
    releaseHeld()
    t.strictSame(await bob.take(3), [frames.accepted, frames.joined('bob'), frames.linked('bob')], 'a link accepted within the window keeps the user')
    t.strictSame(events, [
      ['join', 'carol'], ['link', 'carol'], ['unlink', 'carol'], ['leave', 'carol'], ['leave', 'alice'],
      ['join', 'bob'], ['link', 'bob'], ['unlink', 'bob'], ['link', 'bob']
    ])
  })

  t.test('takeover: the old connection is told it was unlinked and closed with 4001; the others see unlinked, then linked', async t => {
    const app = await build(t, { listen: true, linkConflict: 'takeover' })
    const infos: unknown[] = []
    app.linkServer.on('authenticate', (username, info) => { infos.push([username, info.isNewUser, info.isLinked]) })
    const bob = await connect(app)
    await bob.linked('bob', 3)
    const old = await connect(app)
    await old.linked('alice', 5)
    await bob.take(2)
    const events = record(app)
    const closed = old.closed()
    const tab = await connect(app)
    t.strictSame(await tab.linked('alice', 5), [frames.accepted, frames.joined('bob'), frames.linked('bob'), frames.joined('alice'), frames.linked('alice')])
    t.strictSame(await old.take(1), [frames.unlinked('alice')])
    t.strictSame(await closed, { code: 4001, reason: 'linked from another connection' })
    t.strictSame(await bob.take(2), [frames.unlinked('alice'), frames.linked('alice')])
    t.strictSame(events, [['unlink', 'alice'], ['link', 'alice']])
    t.strictSame(infos, [['bob', true, false], ['alice', true, false], ['alice', false, true]])
    t.strictSame(app.linkServer.getUsers(), [{ username: 'bob', isLinked: true }, { username: 'alice', isLinked: true }])
  })

  t.test('takeover: authenticate may refuse it (info.isLinked); the default, reject, refuses before authentication', async t => {
    const app = await build(t, { linkConflict: 'takeover' })
    app.linkServer.on('authenticate', (_username, info, reject) => {
      if (info.isLinked && info.auth !== 'mine') {
        reject('linked elsewhere')
      }
    })
    const old = await inject(app)
    await old.linked('alice', 3)
    const other = await inject(app)
    other.requestLink('alice', { auth: 'theirs' })
    t.strictSame(await other.take(1), [frames.rejected('linked elsewhere')])
    t.strictSame(await old.settle(), [], 'the linked connection was not disturbed')
    const plain = await build(t)
    let authenticated = 0
    plain.linkServer.on('authenticate', () => { authenticated++ })
    const first = await inject(plain)
    await first.linked('alice', 3)
    const second = await inject(plain)
    second.requestLink('alice')
    t.strictSame(await second.take(1), [frames.rejected('user alice is already linked to a connection')])
    t.equal(authenticated, 1)
  })

  t.test('takeover: links racing to take over one user (asynchronous authentication of 50 ms) end with exactly one linked', async t => {
    const app = await build(t, { listen: true, linkConflict: 'takeover' })
    app.linkServer.on('authenticate', async () => { await new Promise(resolve => setTimeout(resolve, 50)) })
    const old = await connect(app)
    await old.linked('alice', 3)
    const closed = old.closed()
    const racers = await Promise.all([connect(app), connect(app), connect(app)])
    for (const racer of racers) {
      racer.requestLink('alice')
    }
    const answers = await Promise.all(racers.map(async racer => (await racer.take(1))[0]))
    t.strictSame(answers.filter(answer => answer.type === 'krmx/accepted').length, 1)
    t.strictSame(answers.filter(answer => answer.type !== 'krmx/accepted'), [
      frames.rejected('user alice is already linked to a connection'), frames.rejected('user alice is already linked to a connection')
    ])
    t.strictSame(await closed, { code: 4001, reason: 'linked from another connection' })
    t.strictSame(app.linkServer.getStats().linkedUsers, 1)
  })

  t.test('user data: attached by authenticate, returned by getUser and the link event, replaced by each link, gone when the user leaves', async t => {
    const app = await build(t)
    const roles: Record<string, unknown> = { first: { role: 'admin', claims: { sub: 'a1' } }, async: { role: 'guest' } }
    app.linkServer.on('authenticate', (_username, info, _reject, markAsync, attach) => {
      if (info.auth === 'first') {
        attach({ role: 'viewer' })
        attach(roles.first) // the last call wins
      } else if (info.auth === 'async') {
        markAsync(async () => roles.async)
      }
    })
    const events = record(app)
    const alice = await inject(app)
    alice.requestLink('alice', { auth: 'first' })
    await alice.take(3)
    const user = app.linkServer.getUser('alice')
    t.strictSame(user, { username: 'alice', isLinked: true, data: { role: 'admin', claims: { sub: 'a1' } } })
    ;(user?.data as { role: string }).role = 'changed'
    t.strictSame(app.linkServer.getUser('alice')?.data, { role: 'admin', claims: { sub: 'a1' } }, 'each caller gets a copy')
    alice.send({ type: 'krmx/unlink' })
    await alice.take(1)
    t.strictSame(app.linkServer.getUser('alice'), { username: 'alice', isLinked: false, data: { role: 'admin', claims: { sub: 'a1' } } }, 'kept while unlinked')
    alice.requestLink('alice', { auth: 'async' })
    await alice.take(3)
    t.strictSame(app.linkServer.getUser('alice'), { username: 'alice', isLinked: true, data: { role: 'guest' } })
    alice.send({ type: 'krmx/unlink' })
    await alice.take(1)
    alice.requestLink('alice')
    await alice.take(3)
    t.strictSame(app.linkServer.getUser('alice'), { username: 'alice', isLinked: true }, 'a link that attached nothing replaced it')
    alice.send({ type: 'krmx/unlink' })
    await alice.take(1)
    alice.requestLink('alice', { auth: 'first' })
    await alice.take(3)
    alice.send({ type: 'krmx/leave' })
    await alice.take(2)
    await app.linkServer.join('alice')
    t.strictSame(app.linkServer.getUser('alice'), { username: 'alice', isLinked: false }, 'gone with the user')
    t.strictSame(events.filter(([name]) => name === 'link'), [
      ['link', 'alice', { data: { role: 'admin', claims: { sub: 'a1' } }, replay: undefined }],
      ['link', 'alice', { data: { role: 'guest' }, replay: undefined }],
      ['link', 'alice'],
      ['link', 'alice', { data: { role: 'admin', claims: { sub: 'a1' } }, replay: undefined }]
    ])
  })

  t.test('user data: an async listener resolves to it; data that is not JSON or larger than maxPayload in bytes fails the link; a late attach is ignored', async t => {
    const logs = new LogRecorder()
    const app = await build(t, { maxPayload: 1024, fastify: { logger: { level: 'error', stream: logs.stream } } })
    let late: ((data: unknown) => void) | undefined
    app.linkServer.on('authenticate', async (_username, info, _reject, _markAsync, attach) => {
      late = attach
      switch (info.auth) {
        case 'bigint': return { id: 1n }
        case 'function': return () => {}
        case 'large': return 'x'.repeat(1024)
        case 'multibyte': return 'é'.repeat(600) // 602 characters of JSON, 1,202 bytes
        case 'multibyte fits': return { team: 'é'.repeat(505) } // 1,022 bytes of JSON
        default: return { team: 'red' }
      }
    })
    const client = await inject(app)
    for (const auth of ['bigint', 'function', 'large', 'multibyte']) {
      client.requestLink('alice', { auth })
      t.strictSame(await client.take(1), [frames.rejected('authentication failed')], auth)
    }
    client.requestLink('alice', { auth: 'ok' })
    await client.take(3)
    t.strictSame(app.linkServer.getUser('alice'), { username: 'alice', isLinked: true, data: { team: 'red' } })
    ;(late as (data: unknown) => void)({ team: 'blue' })
    t.strictSame(app.linkServer.getUser('alice')?.data, { team: 'red' })
    t.strictSame(logs.lines.map(line => line.msg), [
      'the data attached to the link is not JSON; the link is rejected',
      'the data attached to the link is not JSON; the link is rejected',
      'the data attached to the link is larger than maxPayload; the link is rejected',
      'the data attached to the link is larger than maxPayload; the link is rejected',
      'attach was called after the link was decided; it is ignored'
    ])
    t.strictSame(logs.lines.filter(line => line.bytes !== undefined).map(line => line.bytes), [1026, 1202], 'the data is measured in bytes')
    client.send({ type: 'krmx/unlink' })
    await client.take(1)
    client.requestLink('alice', { auth: 'multibyte fits' })
    await client.take(3)
    t.strictSame(app.linkServer.getUser('alice')?.data, { team: 'é'.repeat(505) }, 'multi-byte data within maxPayload bytes is attached')
  })

  t.test('replay: what is sent to an unlinked user, and broadcast while it is unlinked, is delivered on its next link, after the user list', async t => {
    const app = await build(t, { replay: {} })
    const bob = await inject(app)
    await bob.linked('bob', 3)
    const alice = await inject(app)
    await alice.linked('alice', 5)
    await bob.take(2)
    t.throws(() => app.linkServer.send('nobody', say('x')), { code: 'FST_LINK_UNKNOWN_USER' })
    alice.send({ type: 'krmx/unlink' })
    await alice.take(1)
    await bob.take(1)
    app.linkServer.send('alice', say('one'))
    app.linkServer.broadcast(say('two'))
    app.linkServer.broadcast(say('not for alice'), 'alice')
    app.linkServer.send('bob', say('three'))
    t.strictSame(await bob.take(3), [say('two'), say('not for alice'), say('three')])
    const events = record(app)
    const relink = await inject(app)
    const linked = next(app, 'link')
    relink.requestLink('alice')
    t.strictSame(await linked, ['alice', { data: undefined, replay: { replayed: 2, lost: 0 } }])
    app.linkServer.send('alice', say('new'))
    t.strictSame(await relink.take(7), [
      frames.accepted, frames.joined('bob'), frames.linked('bob'), frames.joined('alice'), frames.linked('alice'), say('one'), say('two')
    ])
    t.strictSame(await relink.take(1), [say('new')])
    await relink.confirmed()
    relink.send({ type: 'krmx/unlink' })
    await relink.take(1)
    await eventually(() => true, () => '')
    const again = await inject(app)
    const relinked = next(app, 'link')
    again.requestLink('alice')
    t.strictSame(await relinked, ['alice', { data: undefined, replay: { replayed: 0, lost: 0 } }], 'what its connection confirmed is not replayed')
    t.strictSame(events.map(([name]) => name), ['link', 'unlink', 'link'])
  })

  t.test('replay: the bounds drop the oldest messages, and the link event counts them as lost', async t => {
    const app = await build(t, { replay: { maxMessages: 3, maxAgeMilliseconds: 200 } })
    await app.linkServer.join('alice')
    for (const text of ['1', '2', '3', '4', '5']) {
      app.linkServer.send('alice', say(text))
    }
    const alice = await inject(app)
    const linked = next(app, 'link')
    alice.requestLink('alice')
    t.strictSame(await linked, ['alice', { data: undefined, replay: { replayed: 3, lost: 2 } }])
    t.strictSame(await alice.take(6), [frames.accepted, frames.joined('alice'), frames.linked('alice'), say('3'), say('4'), say('5')])
    await alice.confirmed()
    alice.send({ type: 'krmx/unlink' })
    await alice.take(1)
    app.linkServer.send('alice', say('old'))
    const sent = Date.now()
    await eventually(() => Date.now() - sent > 250, () => 'time did not pass')
    app.linkServer.send('alice', say('fresh'))
    const aged = next(app, 'link')
    alice.requestLink('alice')
    t.strictSame(await aged, ['alice', { data: undefined, replay: { replayed: 1, lost: 1 } }], 'older than maxAgeMilliseconds')
    t.strictSame(await alice.take(4), [frames.accepted, frames.joined('alice'), frames.linked('alice'), say('fresh')])
  })

  t.test('replay: a TCP connection cut without a close frame gets, on relink with the stock @krmx/client, all sent after the last ping it answered', async t => {
    const app = await build(t, { listen: true, replay: {} })
    const port = (app.server.address() as { port: number }).port
    const raw = await RecordingClient.open(port)
    raw.link('alice')
    await raw.received(3)
    app.linkServer.send('alice', say('confirmed'))
    await raw.received(4)
    await eventually(() => raw.pings.length === 1, () => JSON.stringify(raw.pings))
    const confirmedAt = raw.pings[0]
    raw.answering = false // the network went away: what is sent now is written to a socket nobody reads
    app.linkServer.send('alice', say('lost in flight 1'))
    app.linkServer.broadcast(say('lost in flight 2'))
    await raw.received(6)
    const unlinked = next(app, 'unlink')
    raw.cut()
    await unlinked
    app.linkServer.send('alice', say('while away'))
    const client = createClient({ logger: false })
    const messages: unknown[] = []
    client.on('message', (message: unknown) => messages.push(message))
    await client.connect(urlOf(app))
    const linked = next(app, 'link')
    await client.link('alice')
    t.strictSame(await linked, ['alice', { data: undefined, replay: { replayed: 3, lost: 0 } }])
    await eventually(() => messages.length === 3, () => JSON.stringify(messages))
    t.strictSame(messages, [say('lost in flight 1'), say('lost in flight 2'), say('while away')])
    t.strictSame(client.getUsers(), [{ username: 'alice', isLinked: true }])
    t.match(confirmedAt, /^\d+:1$/, 'the ping that followed the first message named it')
    await client.leave()
    await client.disconnect()
  })

  t.test('replay with takeover: the new connection gets what the old one did not confirm', async t => {
    const app = await build(t, { listen: true, replay: {}, linkConflict: 'takeover' })
    const port = (app.server.address() as { port: number }).port
    const raw = await RecordingClient.open(port)
    raw.answering = false
    raw.link('alice')
    await raw.received(3)
    app.linkServer.send('alice', say('unconfirmed'))
    await raw.received(4)
    const tab = await connect(app)
    const linked = next(app, 'link')
    tab.requestLink('alice')
    t.strictSame(await linked, ['alice', { data: undefined, replay: { replayed: 1, lost: 0 } }])
    t.strictSame(await tab.take(4), [frames.accepted, frames.joined('alice'), frames.linked('alice'), say('unconfirmed')])
    await eventually(() => raw.frames.length === 5, () => JSON.stringify(raw.frames))
    t.strictSame(raw.frames[4], frames.unlinked('alice'))
    raw.cut()
  })

  t.test('replay: a pong confirms only what its server asked: a heartbeat pong, one of another link or a number never pinged confirm nothing', async t => {
    const app = await build(t, { listen: true, replay: {} })
    const raw = await RecordingClient.open((app.server.address() as { port: number }).port)
    raw.answering = false
    raw.link('alice')
    await raw.received(3)
    app.linkServer.send('alice', say('one'))
    await eventually(() => raw.pings.length === 1, () => JSON.stringify(raw.pings))
    const [generation] = raw.pings[0].split(':')
    t.strictSame(raw.pings, [`${generation}:1`])
    raw.pong('') // the heartbeat's
    raw.pong(`${Number(generation) + 1}:1`) // of another link
    raw.pong(`${generation}:7`) // never asked
    raw.pong(`${generation}:0`)
    const unlinked = next(app, 'unlink')
    raw.cut()
    await unlinked
    const again = await inject(app)
    const linked = next(app, 'link')
    again.requestLink('alice')
    t.strictSame(await linked, ['alice', { data: undefined, replay: { replayed: 1, lost: 0 } }], 'still unconfirmed')
    t.strictSame(await again.take(4), [frames.accepted, frames.joined('alice'), frames.linked('alice'), say('one')])
  })

  t.test('replay: a link refused after its authentication (the server filled meanwhile) leaves the user as it was', async t => {
    const app = await build(t, { replay: {}, maxUsers: 1 })
    const held: { release?: () => void } = {}
    app.linkServer.on('authenticate', (_username, _info, _reject, markAsync) => {
      markAsync(async () => { await new Promise<void>(resolve => { held.release = resolve }) })
    })
    const alice = await inject(app)
    alice.requestLink('alice')
    await eventually(() => held.release !== undefined, () => 'no authentication')
    await app.linkServer.join('bob')
    held.release?.()
    t.strictSame(await alice.take(1), [frames.rejected('server is full')])
    t.strictSame(app.linkServer.getUsers(), [{ username: 'bob', isLinked: false }])
  })

  t.test('replay: under a stream of messages the confirmation ping rides with them, naming the message just before it', async t => {
    const app = await build(t, { listen: true, replay: {} })
    const raw = await RecordingClient.open((app.server.address() as { port: number }).port)
    raw.link('alice')
    await raw.received(3)
    let sent = 0
    const timer = setInterval(() => app.linkServer.send('alice', say(String(++sent))), 5)
    await eventually(() => raw.pings.length >= 3, () => JSON.stringify(raw.arrivals))
    clearInterval(timer)
    const arrivals = raw.arrivals.slice(3)
    for (const [index, arrival] of arrivals.entries()) {
      if (arrival.startsWith('ping ')) {
        t.equal(arrival.slice(arrival.indexOf(':') + 1), arrivals[index - 1], `${arrival} follows message ${arrivals[index - 1]}`)
      }
    }
    raw.cut()
  })
}
