import { Type } from '@sinclair/typebox'
import type { FastifyInstance } from 'fastify'
import t, { type Test } from 'tap'
import WebSocket, { WebSocketServer } from 'ws'
import { backoffDelay, createLinkClient, type LinkClient, type LinkClientOptions, LinkRefusedError, validateMessages } from '../../client.js'
import type { LinkServerOptions } from '../../index.js'
import { build } from '../helpers/app.js'
import { connect, urlOf } from '../helpers/clients.js'
import { record } from '../helpers/events.js'
import { frames } from '../helpers/frames.js'
import { eventually } from '../helpers/waits.js'

// The client of fastify-link-server/client against a real server on loopback sockets, with ws' WebSocket (Node 20).
const options = {
  messages: { 'chat/say': Type.Object({ text: Type.String() }) },
  serverMessages: { 'chat/said': Type.Object({ from: Type.String(), text: Type.String() }) },
  strictMessages: true
} satisfies LinkServerOptions

/** A server of the chat's schemas; `chat/say` is broadcast as `chat/said`. */
async function server (t: Test, more: LinkServerOptions = {}): Promise<FastifyInstance> {
  const app = await build(t, { listen: true, ...options, ...more })
  const chat = app.linkServer.typed<typeof options>()
  chat.handle('chat/say', (from, { text }) => chat.broadcast({ type: 'chat/said', payload: { from, text } }))
  return app
}

function client (t: Test, app: FastifyInstance, more: LinkClientOptions = {}): LinkClient<typeof options> {
  const made = createLinkClient<typeof options>(urlOf(app, '/'), { WebSocket: WebSocket as unknown as LinkClientOptions['WebSocket'], ...more })
  t.teardown(() => made.close())
  return made
}

/** The statuses a client goes through, from now on. */
function statuses (linkClient: LinkClient<typeof options>): string[] {
  const seen: string[] = []
  linkClient.on('status', status => seen.push(status))
  return seen
}

/** Ends every server-side socket abruptly (no close frame), as a cut network would. */
function cutAll (app: FastifyInstance): void {
  for (const socket of app.websocketServer.clients) {
    socket.terminate()
  }
}

t.test('links, sends and hears typed messages, keeps a store whose snapshot changes only with its content, and leave() closes', async t => {
  const app = await server(t)
  const events = record(app)
  const bob = await connect(app)
  await bob.linked('bob', 3)
  const alice = client(t, app)
  const seen = statuses(alice)
  let notified = 0
  const { subscribe, getSnapshot } = alice // bound, as useSyncExternalStore(client.subscribe, client.getSnapshot) takes them
  subscribe(() => notified++)
  const idle = getSnapshot()
  t.equal(alice.getSnapshot(), idle, 'the same object while nothing changed')
  t.strictSame(idle, { status: 'idle', username: undefined, users: [], reason: undefined })
  t.equal(alice.send({ type: 'chat/say', payload: { text: 'too soon' } }), false, 'not linked: dropped')
  t.strictSame(await alice.link('alice'), [{ username: 'bob', isLinked: true }, { username: 'alice', isLinked: true }])
  const linked = alice.getSnapshot()
  t.strictSame(linked, { status: 'linked', username: 'alice', users: [{ username: 'bob', isLinked: true }, { username: 'alice', isLinked: true }], reason: undefined })
  t.equal(alice.getSnapshot(), linked)
  t.ok(notified > 0, `subscribers were told of each change (${notified})`)

  const said = new Promise(resolve => alice.on('message', resolve))
  const handled: unknown[] = []
  const removeHandler = alice.handle('chat/said', (payload, message) => handled.push([payload.text, message.type]))
  t.equal(alice.send({ type: 'chat/say', payload: { text: 'hello' } }), true)
  t.strictSame(await said, { type: 'chat/said', payload: { from: 'alice', text: 'hello' } })
  t.strictSame(handled, [['hello', 'chat/said']], 'a handler of its type gets the payload, after the message listeners')
  removeHandler()
  t.strictSame(await bob.take(3), [frames.joined('alice'), frames.linked('alice'), { type: 'chat/said', payload: { from: 'alice', text: 'hello' } }])

  const users: string[] = []
  alice.on('unlink', username => users.push(`unlink ${username}`))
  alice.on('leave', username => users.push(`leave ${username}`))
  bob.send({ type: 'krmx/leave' })
  await eventually(() => users.length === 2, () => JSON.stringify(users))
  t.strictSame(users, ['unlink bob', 'leave bob'])
  t.strictSame(alice.getSnapshot().users, [{ username: 'alice', isLinked: true }])

  alice.leave()
  t.strictSame(alice.getSnapshot(), { status: 'closed', username: 'alice', users: [{ username: 'alice', isLinked: true }], reason: 'left' })
  await eventually(() => app.linkServer.getStats().connections === 1, () => JSON.stringify(app.linkServer.getStats()))
  t.strictSame(app.linkServer.getUsers(), [], 'the user left, and its socket is closed: nothing hangs')
  t.strictSame(seen, ['connecting', 'linking', 'linked', 'closed'])
  t.strictSame(events.filter(([, username]) => username === 'alice').map(([event]) => event), ['join', 'link', 'message', 'unlink', 'leave'])
})

t.test('a refused link rejects with the server\'s reason and is not tried again', async t => {
  const app = await server(t)
  let attempts = 0
  app.linkServer.on('authenticate', (_username, _info, reject) => { attempts++; reject('not today') })
  const alice = client(t, app)
  const error = await alice.link('alice').catch((err: unknown) => err)
  t.ok(error instanceof LinkRefusedError)
  t.strictSame([(error as LinkRefusedError).reason, (error as LinkRefusedError).code, (error as Error).message],
    ['not today', 'FST_LINK_CLIENT_REFUSED', 'the server refused the link: not today'])
  t.strictSame([alice.getSnapshot().status, alice.getSnapshot().reason], ['closed', 'not today'])
  await new Promise(resolve => setTimeout(resolve, 300))
  t.equal(attempts, 1, 'one attempt')
  await t.rejects(alice.link('alice'), { message: 'link() was called already (status closed): make a client for each link' })
})

t.test('reconnects after an abrupt cut as the same user, with a fresh auth each time, and comes back linked', async t => {
  const app = await server(t, { reconnectWindowMilliseconds: 5_000 })
  const tokens: Array<string | undefined> = []
  app.linkServer.on('authenticate', (_username, info) => { tokens.push(info.auth) })
  let calls = 0
  const alice = client(t, app, { reconnect: { initialDelayMilliseconds: 50 } })
  const seen = statuses(alice)
  await alice.link('alice', { auth: async () => `token-${++calls}` })
  cutAll(app)
  await eventually(() => seen.at(-1) === 'linked' && seen.length > 3, () => JSON.stringify(seen))
  t.strictSame(seen, ['connecting', 'linking', 'linked', 'reconnecting', 'linked'])
  t.strictSame(tokens, ['token-1', 'token-2'])
  t.strictSame(app.linkServer.getUsers(), [{ username: 'alice', isLinked: true }], 'the same user, linked again')
})

t.test('never fights: no reconnect after a takeover (4001) or a kick', async t => {
  const app = await server(t, { linkConflict: 'takeover' })
  const alice = client(t, app, { reconnect: { initialDelayMilliseconds: 10 } })
  await alice.link('alice')
  const other = await connect(app)
  await other.linked('alice', 3)
  await eventually(() => alice.getSnapshot().status === 'closed', () => JSON.stringify(alice.getSnapshot()))
  t.strictSame([alice.getSnapshot().status, alice.getSnapshot().reason], ['closed', 'taken over by another connection'])

  const bob = client(t, app, { reconnect: { initialDelayMilliseconds: 10 } })
  await bob.link('bob')
  await app.linkServer.kick('bob')
  await eventually(() => bob.getSnapshot().status === 'closed', () => JSON.stringify(bob.getSnapshot()))
  t.strictSame([bob.getSnapshot().status, bob.getSnapshot().reason], ['closed', 'kicked'])
  await new Promise(resolve => setTimeout(resolve, 200))
  t.strictSame(app.linkServer.getUsers(), [{ username: 'alice', isLinked: true }], 'neither came back')
})

t.test('already linked after a reconnect is tried again a bounded number of times (the old connection may be half-open)', async t => {
  const app = await server(t, { reconnectWindowMilliseconds: 5_000 })
  let attempts = 0
  app.linkServer.on('authenticate', () => { attempts++ })
  const alice = client(t, app, { reconnect: { initialDelayMilliseconds: 20, maxDelayMilliseconds: 20 }, alreadyLinkedRetries: 3 })
  await alice.link('alice')
  cutAll(app)
  const holder = await connect(app)
  await holder.linked('alice', 3) // the user is linked elsewhere while the client comes back
  await eventually(() => alice.getSnapshot().status === 'closed', () => JSON.stringify(alice.getSnapshot()))
  t.strictSame([alice.getSnapshot().reason, attempts], ['user alice is already linked to a connection', 2], 'its first link, and the holder\'s')

  const bob = client(t, app, { reconnect: { initialDelayMilliseconds: 20, maxDelayMilliseconds: 20 }, alreadyLinkedRetries: 50 })
  await bob.link('bob')
  cutAll(app)
  const stale = await connect(app)
  await stale.linked('bob', 3)
  setTimeout(() => stale.send({ type: 'krmx/unlink' }), 30) // the old link goes: the next try succeeds
  await eventually(() => bob.getSnapshot().status === 'linked' && app.linkServer.isLinked('bob'), () => JSON.stringify(bob.getSnapshot()), 5_000)
  t.equal(bob.getSnapshot().status, 'linked')
})

t.test('the reconnect delays of 1,000 clients are spread (full jitter), under their cap', async t => {
  const reconnect = { initialDelayMilliseconds: 250, maxDelayMilliseconds: 10_000, factor: 2, maxAttempts: Infinity }
  for (const attempt of [0, 3, 10]) {
    const cap = Math.min(10_000, 250 * 2 ** attempt)
    const delays = Array.from({ length: 1_000 }, () => backoffDelay(reconnect, attempt, Math.random)).sort((a, b) => a - b)
    t.ok(delays[0] >= 0 && delays[999] < cap, `attempt ${attempt}: within [0, ${cap})`)
    t.ok(new Set(delays).size > Math.min(cap, 1_000) * 0.5, `attempt ${attempt}: ${new Set(delays).size} distinct delays`)
    t.ok(delays[100] < cap * 0.2 && delays[900] > cap * 0.8, `attempt ${attempt}: the tenth percentiles are ${delays[100]} and ${delays[900]} of ${cap}`)
  }
  t.strictSame([backoffDelay(reconnect, 0, () => 0), backoffDelay(reconnect, 2, () => 0.5), backoffDelay(reconnect, 20, () => 0.999)], [0, 500, 9_990])
})

t.test('1,000 real clients cut at once come back spread over their first delay\'s cap, not in lockstep', async t => {
  // In rooms of 20, so that the user lists do not make a million frames.
  const app = await server(t, { path: '/tables/:room', reconnectWindowMilliseconds: 60_000, maxConnections: 2_000 })
  const opened: number[] = []
  class Timed extends WebSocket {
    constructor (url: string) {
      super(url)
      opened.push(performance.now())
    }
  }
  const clients = Array.from({ length: 1_000 }, (_, i) => {
    const made = createLinkClient<typeof options>(urlOf(app, `/tables/t${i % 50}`), { WebSocket: Timed, reconnect: { initialDelayMilliseconds: 1_000, maxDelayMilliseconds: 1_000 } })
    t.teardown(() => made.close())
    return made
  })
  for (let i = 0; i < clients.length; i += 100) {
    await Promise.all(clients.slice(i, i + 100).map(async (linkClient, j) => await linkClient.link(`user${i + j}`)))
  }
  opened.length = 0
  const cutAt = performance.now()
  cutAll(app)
  await eventually(() => opened.length >= 1_000 && clients.every(linkClient => linkClient.getSnapshot().status === 'linked'),
    () => `${opened.length} reopened`, 30_000)
  const buckets = new Set(opened.map(at => Math.floor((at - cutAt) / 100)))
  t.equal(opened.length, 1_000, 'each came back once')
  t.ok(buckets.size >= 8, `their new connections opened over ${buckets.size} tenths of a second after the cut (the cap of the first delay is 1 s)`)
})

t.test('without a WebSocket, the client says what to give it; reconnect: false never reconnects', async t => {
  t.throws(() => createLinkClient('ws://127.0.0.1:1/'), { message: 'no WebSocket: give one, createLinkClient(url, { WebSocket }) (in Node 20, ws\'s)' })
  const app = await server(t)
  const alice = client(t, app, { reconnect: false })
  await alice.link('alice')
  cutAll(app)
  await eventually(() => alice.getSnapshot().status === 'closed', () => JSON.stringify(alice.getSnapshot()))
  t.equal(alice.getSnapshot().reason, 'the connection closed')
})

t.test('an auth function that throws refuses the link with its message; a client closed while its auth runs sends nothing', async t => {
  const app = await server(t)
  let attempts = 0
  app.linkServer.on('authenticate', () => { attempts++ })
  const alice = client(t, app)
  await t.rejects(alice.link('alice', { auth: () => { throw new Error('no token') } }), { message: 'the server refused the link: no token' })
  t.equal(alice.getSnapshot().status, 'closed')
  // eslint-disable-next-line no-throw-literal -- what a careless auth function may throw
  await t.rejects(client(t, app).link('carol', { auth: () => { throw 'a string' } }), { message: 'the server refused the link: a string' })
  const nowhere = createLinkClient('ws://127.0.0.1:1/', { WebSocket: WebSocket as unknown as LinkClientOptions['WebSocket'] })
  await t.rejects(nowhere.link('dan'), { message: 'the server refused the link: the connection closed' }, 'no server: the error, then the close')
  let release: ((token: string) => void) | undefined
  const bob = client(t, app)
  const linking = bob.link('bob', { auth: async () => await new Promise<string>(resolve => { release = resolve }) })
  await eventually(() => release !== undefined, () => 'the auth function was not called')
  bob.close()
  ;(release as (token: string) => void)('late')
  await t.rejects(linking, { message: 'the server refused the link: closed' })
  await new Promise(resolve => setTimeout(resolve, 100))
  t.equal(attempts, 0, 'no link request reached the server')
})

t.test('what the server sends is input: a frame that is not JSON, or has no string type, is ignored', async t => {
  const wss = new WebSocketServer({ port: 0, host: '127.0.0.1' })
  t.teardown(() => wss.close())
  wss.on('connection', socket => {
    socket.on('message', () => {
      for (const frame of ['not json', '{"type":5}', 'null', '{"type":"krmx/joined","payload":5}', '{"type":"krmx/accepted"}', '{"type":"krmx/joined","payload":{"username":"alice"}}',
        '{"type":"krmx/linked","payload":{"username":"alice"}}', '{"type":"krmx/other","payload":{"username":"alice"}}', '"a string"', '5',
        '{"type":"hello","payload":1}']) {
        socket.send(frame)
      }
    })
  })
  await new Promise(resolve => wss.once('listening', resolve))
  const alice = createLinkClient(`ws://127.0.0.1:${(wss.address() as { port: number }).port}/`, { WebSocket: WebSocket as unknown as LinkClientOptions['WebSocket'] })
  t.teardown(() => alice.close())
  const messages: unknown[] = []
  alice.on('message', message => messages.push(message))
  t.strictSame(await alice.link('alice'), [{ username: 'alice', isLinked: true }])
  await eventually(() => messages.length === 1, () => JSON.stringify(messages))
  t.strictSame(messages, [{ type: 'hello', payload: 1 }])
})

t.test('with validateMessages, a message the server sends that fails its schema, or has no schema, goes to invalidMessage with its errors', async t => {
  const wss = new WebSocketServer({ port: 0, host: '127.0.0.1' })
  t.teardown(() => wss.close())
  wss.on('connection', socket => {
    socket.on('message', () => {
      for (const frame of ['{"type":"krmx/accepted"}', '{"type":"krmx/joined","payload":{"username":"alice"}}', '{"type":"krmx/linked","payload":{"username":"alice"}}',
        '{"type":"chat/said","payload":{"from":"bob","text":"fine"}}', '{"type":"chat/said","payload":{"from":5}}', '{"type":"chat/shout"}', '{"type":"constructor"}']) {
        socket.send(frame)
      }
    })
  })
  await new Promise(resolve => wss.once('listening', resolve))
  const url = `ws://127.0.0.1:${(wss.address() as { port: number }).port}/`
  const heard = async (validate: LinkClientOptions['validate']): Promise<unknown[]> => {
    const alice = createLinkClient<typeof options>(url, { WebSocket: WebSocket as unknown as LinkClientOptions['WebSocket'], validate })
    t.teardown(() => alice.close())
    const seen: unknown[] = []
    alice.on('message', message => seen.push(['message', message]))
    alice.on('invalidMessage', (message, errors) => seen.push(['invalid', message, errors]))
    await alice.link('alice')
    await eventually(() => seen.length === 4, () => JSON.stringify(seen))
    return seen
  }
  t.strictSame(await heard(validateMessages(options.serverMessages)), [
    ['message', { type: 'chat/said', payload: { from: 'bob', text: 'fine' } }],
    ['invalid', { type: 'chat/said', payload: { from: 5 } }, [
      { path: '/payload/text', message: 'Expected required property' },
      { path: '/payload/from', message: 'Expected string' },
      { path: '/payload/text', message: 'Expected string' }
    ]],
    ['invalid', { type: 'chat/shout' }, [{ path: '/type', message: 'Unregistered message type' }]],
    ['invalid', { type: 'constructor' }, [{ path: '/type', message: 'Unregistered message type' }]]
  ])
  t.strictSame(await heard(validateMessages(options.serverMessages, { strict: false })), [
    ['message', { type: 'chat/said', payload: { from: 'bob', text: 'fine' } }],
    ['invalid', { type: 'chat/said', payload: { from: 5 } }, [
      { path: '/payload/text', message: 'Expected required property' },
      { path: '/payload/from', message: 'Expected string' },
      { path: '/payload/text', message: 'Expected string' }
    ]],
    ['message', { type: 'chat/shout' }],
    ['message', { type: 'constructor' }]
  ], 'not strict: a type without a schema passes')
})

t.test('what a session server sends is input too: a repeated number is dropped, a gap is told as lost, a pong is quiet', async t => {
  const wss = new WebSocketServer({ port: 0, host: '127.0.0.1' })
  t.teardown(() => wss.close())
  const requests: unknown[] = []
  wss.on('connection', socket => {
    socket.on('message', data => {
      requests.push(JSON.parse(data.toString()))
      for (const frame of ['{"type":"krmx/accepted","payload":{"session":{"user":3,"last":0}}}', '{"type":"krmx/accepted","payload":{"session":{"user":3,"last":0}}}',
        '{"type":"krmx/joined","payload":{"username":"alice"}}', '{"type":"krmx/linked","payload":{"username":"alice"}}', '{"type":"krmx/pong"}',
        '{"seq":1,"type":"n","payload":1}', '{"seq":1,"type":"n","payload":"again"}', '{"seq":3,"type":"n","payload":3}', '{"type":"n","payload":"unnumbered"}',
        '{"seq":"4","type":"n","payload":"a number that is not one"}']) {
        socket.send(frame)
      }
    })
  })
  await new Promise(resolve => wss.once('listening', resolve))
  const alice = createLinkClient(`ws://127.0.0.1:${(wss.address() as { port: number }).port}/`, { WebSocket: WebSocket as unknown as LinkClientOptions['WebSocket'], heartbeatMilliseconds: false })
  t.teardown(() => alice.close())
  const seen: unknown[] = []
  alice.on('message', message => seen.push(message))
  alice.on('lost', count => seen.push(['lost', count]))
  await alice.link('alice', { auth: 'token' })
  await eventually(() => seen.length === 5, () => JSON.stringify(seen))
  t.strictSame(seen, [
    { type: 'n', payload: 1 }, ['lost', 1], { type: 'n', payload: 3 }, { type: 'n', payload: 'unnumbered' }, { seq: '4', type: 'n', payload: 'a number that is not one' }
  ])
  t.strictSame(requests, [{ type: 'krmx/link', payload: { username: 'alice', version: '0.6.0', auth: 'token', session: {} } }])
})

t.test('a listener that throws stops neither the client nor the other listeners; the error is thrown where the platform reports it', async t => {
  const app = await server(t)
  const alice = client(t, app)
  const heard: string[] = []
  alice.on('link', username => { throw new Error(`careless ${username}`) })
  alice.on('link', username => heard.push(username))
  const thrown = new Promise(resolve => process.once('uncaughtException', resolve))
  t.strictSame(await alice.link('alice'), [{ username: 'alice', isLinked: true }])
  t.strictSame(heard, ['alice'])
  t.match(await thrown, { message: 'careless alice' })
})

t.test('a user list of 5,000 is one snapshot per burst, not one per frame: the subscribers are told a few times, not 10,000', async t => {
  const app = await server(t)
  const names = Array.from({ length: 5_000 }, (_, i) => `user${i}`)
  for (const name of names) {
    await app.linkServer.join(name)
  }
  const alice = client(t, app)
  let notified = 0
  const snapshots = new Set<unknown>()
  alice.subscribe(() => { notified++; snapshots.add(alice.getSnapshot()) })
  const users = await alice.link('alice')
  await new Promise(resolve => setImmediate(resolve))
  t.strictSame(users, [...names.map(username => ({ username, isLinked: false })), { username: 'alice', isLinked: true }])
  t.equal(alice.getSnapshot().users.length, 5_001)
  t.ok(notified >= 2 && notified <= 20, `told ${notified} times for 10,002 frames`)
  t.equal(snapshots.size, notified, 'a new snapshot each time, made when read')
})

t.test('a status listener that closes the client re-entrantly, at any status, leaves nothing behind: no link, no reconnection', async t => {
  const app = await server(t, { reconnectWindowMilliseconds: 5_000 })
  const events = record(app)
  for (const at of ['connecting', 'linking'] as const) {
    const early = client(t, app)
    early.on('status', status => { if (status === at) early.close() })
    await t.rejects(early.link(`early-${at}`), { message: 'the server refused the link: closed' })
    t.equal(early.getSnapshot().status, 'closed')
  }
  const linked = client(t, app)
  linked.on('status', status => { if (status === 'linked') linked.close() })
  t.strictSame(await linked.link('linked'), [{ username: 'linked', isLinked: true }], 'closed once linked: the link resolved first')
  const back = client(t, app, { reconnect: { initialDelayMilliseconds: 5, maxDelayMilliseconds: 5 } })
  await back.link('back')
  back.on('status', status => { if (status === 'reconnecting') back.close() })
  cutAll(app)
  await eventually(() => back.getSnapshot().status === 'closed', () => JSON.stringify(back.getSnapshot()))
  await new Promise(resolve => setTimeout(resolve, 100))
  t.strictSame(app.linkServer.getUsers(), [{ username: 'linked', isLinked: false }, { username: 'back', isLinked: false }], 'neither early one linked; back did not come back')
  t.strictSame(events.map(([event, username]) => `${event} ${username}`), ['join linked', 'link linked', 'unlink linked', 'join back', 'link back', 'unlink back'])
  t.equal(app.linkServer.getStats().connections, 0, 'and no socket is left open')
})
