import { Type } from '@sinclair/typebox'
import Fastify from 'fastify'
import t, { type Test } from 'tap'
import fastifyLinkServer, { type LinkServerOptions } from '../../index.js'
import { eventually } from '../helpers/waits.js'
import { LinkRefusedError } from '../../client.js'
import { injectedWebSocket, linkClient, LinkRejectedError, LinkTestClient, linkUser, testClientVersion } from '../../testing.js'

// The test kit (fastify-link-server/testing), as an application's tests use it: over injectWS, no port.

async function chatApp (t: Test) {
  const app = Fastify()
  await app.register(fastifyLinkServer, { path: '/ws', pingIntervalMilliseconds: 0 })
  app.linkServer.on('authenticate', (_username, info, reject) => {
    if (info.auth !== 'secret') {
      reject('wrong password')
    }
  })
  app.linkServer.on('message', (username, message) => {
    app.linkServer.broadcast({ type: 'chat/said', payload: { username, text: (message.payload as { text: string }).text } })
  })
  await app.ready()
  t.teardown(() => app.close())
  return app
}

t.test('two users link, see each other, chat; one goes away and the other sees it unlinked', async t => {
  const app = await chatApp(t)
  const alice = await linkUser(app, 'alice', { auth: 'secret', path: '/ws' })
  t.strictSame(alice.users(), [{ username: 'alice', isLinked: true }])
  const bob = await LinkTestClient.open(app, '/ws')
  t.strictSame(await bob.link('bob', { auth: 'secret' }), [
    { type: 'krmx/accepted' },
    { type: 'krmx/joined', payload: { username: 'alice' } },
    { type: 'krmx/linked', payload: { username: 'alice' } },
    { type: 'krmx/joined', payload: { username: 'bob' } },
    { type: 'krmx/linked', payload: { username: 'bob' } }
  ])
  t.strictSame(await alice.next('krmx/linked'), { type: 'krmx/linked', payload: { username: 'bob' } })
  t.strictSame(alice.users(), [{ username: 'alice', isLinked: true }, { username: 'bob', isLinked: true }])
  bob.send({ type: 'chat/say', payload: { text: 'hi' } })
  t.strictSame(await alice.next('chat/said'), { type: 'chat/said', payload: { username: 'bob', text: 'hi' } })
  t.strictSame(await bob.take(1), [{ type: 'chat/said', payload: { username: 'bob', text: 'hi' } }])
  bob.close()
  t.strictSame(await alice.next('krmx/unlinked'), { type: 'krmx/unlinked', payload: { username: 'bob' } })
  t.strictSame(alice.users(), [{ username: 'alice', isLinked: true }, { username: 'bob', isLinked: false }])
  t.strictSame(alice.unread(), [])
  t.equal(alice.frames().length, 7)
})

t.test('a rejected link throws a LinkRejectedError with the reason; linkUser closes its connection', async t => {
  const app = await chatApp(t)
  const client = await LinkTestClient.open(app, '/ws')
  const error = await client.link('mallory', { auth: 'guess' }).then(() => undefined, (err: unknown) => err)
  t.ok(error instanceof LinkRejectedError)
  t.strictSame([(error as LinkRejectedError).reason, (error as Error).message], ['wrong password', 'the link of mallory was rejected: wrong password'])
  await t.rejects(linkUser(app, 'eve', { path: '/ws' }), new LinkRejectedError('eve', 'wrong password'))
  await eventually(() => app.linkServer.getStats().connections === 1, () => 'the connection of eve was not closed')
  const alice = await linkUser(app, 'alice', { auth: 'secret', path: '/ws', version: testClientVersion })
  t.strictSame(alice.users(), [{ username: 'alice', isLinked: true }])
  await app.linkServer.kick('alice')
  t.strictSame(await alice.next('krmx/left'), { type: 'krmx/left', payload: { username: 'alice' } })
  t.strictSame(alice.users(), [])
})

t.test('a wait that times out names what did arrive; closed() answers the close code, before and after the close', async t => {
  const app = await chatApp(t)
  const alice = await linkUser(app, 'alice', { auth: 'secret', path: '/ws' })
  app.linkServer.broadcast({ type: 'news', payload: 1 })
  await t.rejects(alice.next('chat/said', 50), new Error('waited 50 ms for chat/said; unread frames: []'))
  app.linkServer.broadcast({ type: 'news', payload: 2 })
  await t.rejects(alice.take(2, 50), new Error('waited 50 ms for 2 frames; unread frames: [{"type":"news","payload":2}]'))
  const silent = await LinkTestClient.open(app, '/ws')
  await t.rejects(silent.link('bob', { auth: 'secret' }, 0).then(() => silent.next('never', 0)), /waited 0 ms for never/)
  const closed = alice.closed()
  alice.ws.close(4000, 'bye')
  t.strictSame(await closed, { code: 4000, reason: 'bye' })
  t.strictSame(await alice.closed(), { code: 4000, reason: 'bye' }, 'and again, after the close')
})

const tableOptions = {
  path: '/table',
  pingIntervalMilliseconds: 0,
  messages: { 'table/move': Type.Object({ cell: Type.Integer({ minimum: 0, maximum: 8 }) }) },
  serverMessages: {
    'table/state': Type.Object({ cells: Type.Array(Type.String()) }),
    'table/moved': Type.Object({ by: Type.String(), cell: Type.Integer() })
  },
  strictMessages: true,
  reconnectWindowMilliseconds: 60_000,
  replay: { maxMessages: 10 }
} satisfies LinkServerOptions

/** A table that sends its state to every user on link, and each move to everyone. */
async function tableApp (t: Test) {
  const app = Fastify()
  await app.register(fastifyLinkServer, tableOptions)
  const linkServer = app.linkServer.typed<typeof tableOptions>()
  const cells = Array.from({ length: 9 }, () => '')
  linkServer.on('link', username => {
    linkServer.send(username, { type: 'table/state', payload: { cells } })
  })
  linkServer.handle('table/move', (by, { cell }) => {
    cells[cell] = by
    linkServer.broadcast({ type: 'table/moved', payload: { by, cell } })
  })
  await app.ready()
  t.teardown(() => app.close())
  return app
}

t.test('what arrives with a link (what a link listener sends, a replay) stays unread: next() finds it; the link reads the user list only', async t => {
  const app = await tableApp(t)
  const alice = await linkUser<typeof tableOptions>(app, 'alice', { path: '/table' })
  t.strictSame(await alice.next('table/state'), { type: 'table/state', payload: { cells: ['', '', '', '', '', '', '', '', ''] } })
  const bob = await LinkTestClient.open<typeof tableOptions>(app, '/table')
  t.strictSame(await bob.link('bob'), [
    { type: 'krmx/accepted' },
    { type: 'krmx/joined', payload: { username: 'alice' } },
    { type: 'krmx/linked', payload: { username: 'alice' } },
    { type: 'krmx/joined', payload: { username: 'bob' } },
    { type: 'krmx/linked', payload: { username: 'bob' } }
  ], 'the link answers the accepted frame and the user list')
  t.strictSame(bob.unread(), [{ type: 'table/state', payload: { cells: ['', '', '', '', '', '', '', '', ''] } }], 'and leaves the state unread')
  alice.send({ type: 'table/move', payload: { cell: 4 } })
  t.strictSame(await bob.next('table/moved'), { type: 'table/moved', payload: { by: 'alice', cell: 4 } })
  await app.linkServer.join('carol')
  alice.send({ type: 'table/move', payload: { cell: 0 } })
  await alice.next('table/moved')
  const carol = await LinkTestClient.open<typeof tableOptions>(app, '/table')
  t.strictSame((await carol.link('carol')).map(frame => frame.type), ['krmx/accepted', 'krmx/joined', 'krmx/linked', 'krmx/joined', 'krmx/linked', 'krmx/joined', 'krmx/linked'])
  t.strictSame(await carol.take(2), [
    { type: 'table/moved', payload: { by: 'alice', cell: 0 } },
    { type: 'table/state', payload: { cells: ['alice', '', '', '', 'alice', '', '', '', ''] } }
  ], 'the replay of what carol missed while unlinked, then the state the link listener sent, in the order they arrived')
  t.strictSame(carol.unread(), [])
})

t.test('no wait of the kit hangs: a settle, link or next on a socket the server closed fails at once, naming the close and the unread frames', async t => {
  const app = Fastify()
  await app.register(fastifyLinkServer, { pingIntervalMilliseconds: 0, linkConflict: 'takeover' })
  await app.ready()
  t.teardown(() => app.close())
  const first = await linkUser(app, 'alice')
  await linkUser(app, 'alice')
  t.strictSame(await first.closed(), { code: 4001, reason: 'linked from another connection' }, 'the first socket is taken over')
  await t.rejects(first.settle(), new Error('waited 5000 ms for the answer to a ping, but the socket closed (4001 linked from another connection); ' +
    'unread frames: [{"type":"krmx/unlinked","payload":{"username":"alice"}}]'))
  await t.rejects(first.next('krmx/linked'), new Error('waited 5000 ms for krmx/linked, but the socket closed (4001 linked from another connection); unread frames: []'))
  await t.rejects(first.take(1), new Error('waited 5000 ms for 1 frames, but the socket closed (4001 linked from another connection); unread frames: []'))

  let closing: Promise<void> | undefined
  app.linkServer.on('authenticate', username => {
    if (username === 'bob') {
      closing = app.close() // a teardown while bob's link is decided
    }
    return new Promise<void>(resolve => setTimeout(resolve, 10))
  })
  const bob = await LinkTestClient.open(app)
  await t.rejects(bob.link('bob'), new Error('waited 5000 ms for krmx/accepted or krmx/rejected, but the socket closed (1001 server closing); unread frames: []'))
  await closing
})

t.test('a ping the server does not answer in time fails the wait, naming the frames that did arrive', async t => {
  const app = await chatApp(t)
  const alice = await linkUser(app, 'alice', { auth: 'secret', path: '/ws' })
  alice.ws.pause() // nothing more is read from the socket: the pong cannot arrive
  await t.rejects(alice.settle(20), new Error('waited 20 ms for the answer to a ping; unread frames: []'))
  alice.ws.resume()
  t.strictSame(await alice.settle(), [], 'and the next settle, once the socket is read again, passes')
  alice.close()
  await alice.closed()
  await t.rejects(alice.next('chat/said'), new Error('waited 5000 ms for chat/said, but the socket closed (1006); unread frames: []'),
    'a socket this side ended closes with 1006 and no reason')
})

t.test('linkClient: the client of fastify-link-server/client over injectWS, typed, reconnecting, and leave() reaches the server', async t => {
  const app = Fastify()
  const options = {
    path: '/ws',
    pingIntervalMilliseconds: 0,
    reconnectWindowMilliseconds: 10_000,
    replay: {},
    messages: { 'chat/say': Type.Object({ text: Type.String() }) },
    serverMessages: { 'chat/said': Type.Object({ username: Type.String(), text: Type.String() }) }
  } satisfies LinkServerOptions
  await app.register(fastifyLinkServer, options)
  const chat = app.linkServer.typed<typeof options>()
  chat.handle('chat/say', (username, { text }) => chat.broadcast({ type: 'chat/said', payload: { username, text } }))
  app.linkServer.on('authenticate', (_username, info, reject) => { if (info.auth !== 'secret') reject('wrong password') })
  await app.ready()
  t.teardown(() => app.close())
  const events: string[] = []
  for (const event of ['link', 'unlink', 'leave'] as const) {
    app.linkServer.on(event, (username: string) => events.push(`${event} ${username}`))
  }
  const alice = await linkClient<typeof options>(app, 'alice', { path: '/ws', auth: async () => 'secret', client: { reconnect: { initialDelayMilliseconds: 5 } } })
  const heard: unknown[] = []
  alice.on('message', message => heard.push(message.payload))
  alice.send({ type: 'chat/say', payload: { text: 'one' } })
  await eventually(() => heard.length === 1, () => JSON.stringify(heard))
  for (const socket of app.websocketServer.clients) {
    socket.terminate()
  }
  await eventually(() => events.length === 3, () => JSON.stringify(events))
  chat.broadcast({ type: 'chat/said', payload: { username: 'server', text: 'two' } })
  await eventually(() => heard.length === 2, () => JSON.stringify(heard))
  t.strictSame(heard, [{ username: 'alice', text: 'one' }, { username: 'server', text: 'two' }])
  alice.leave()
  await eventually(() => events.length === 5, () => JSON.stringify(events))
  t.strictSame(events, ['link alice', 'unlink alice', 'link alice', 'unlink alice', 'leave alice'])
  await eventually(() => app.linkServer.getStats().connections === 0, () => JSON.stringify(app.linkServer.getStats()))
  await t.rejects(linkClient(app, 'eve', { path: '/ws' }), new LinkRefusedError('wrong password'))
  await eventually(() => app.linkServer.getStats().connections === 0, () => 'the refused connection was not closed')
  const Injected = injectedWebSocket(app)
  const early = new Injected('/ws')
  early.close() // closed before injectWS opened it: it never opens
  const nowhere = new Injected('/nowhere')
  const errors: unknown[] = []
  nowhere.onerror = error => errors.push(error)
  const closed = await new Promise(resolve => { nowhere.onclose = resolve })
  t.strictSame([closed, nowhere.readyState, early.readyState], [{ code: 1006, reason: '' }, 3, 3])
  t.match(errors, [{ message: 'Unexpected server response: 404' }], 'an error, then the close, as a WebSocket tells them')
  await eventually(() => app.linkServer.getStats().connections === 0, () => 'the early socket was not ended')
})
