import websocket from '@fastify/websocket'
import Fastify, { type FastifyInstance } from 'fastify'
import t from 'tap'
import fastifyLinkServer from '../index.js'
import { build, Client, connect, frames, inject } from './helper.js'

t.test('the path option sets the WebSocket route; other paths are not upgraded', async t => {
  const app = await build(t, { path: '/link' })
  const client = await inject(app, '/link')
  t.strictSame(await client.linked('alice', 3), [frames.accepted, frames.joined('alice'), frames.linked('alice')])
  await t.rejects(app.injectWS('/'), new Error('Unexpected server response: 404'))
  const plain = await app.inject({ method: 'GET', url: '/link' })
  t.equal(plain.statusCode, 404, 'a plain HTTP request to the route is not found')
})

t.test('the route lives under the encapsulating prefix, and linkServer is decorated in that context', async t => {
  const app = Fastify()
  let scoped!: FastifyInstance
  await app.register(async (child) => {
    await child.register(fastifyLinkServer, { path: '/link', pingIntervalMilliseconds: 0 })
    child.get('/users', async () => child.linkServer.getUsers())
    scoped = child
  }, { prefix: '/v1' })
  t.teardown(() => app.close())
  await app.ready()
  const client = new Client(await scoped.injectWS('/v1/link'))
  await client.linked('alice', 3)
  const users = await app.inject({ method: 'GET', url: '/v1/users' })
  t.strictSame(users.json(), [{ username: 'alice', isLinked: true }])
  t.equal(app.hasDecorator('linkServer'), false, 'the root instance is not decorated')
})

t.test('an instance that registered @fastify/websocket itself works too', async t => {
  const app = Fastify()
  await app.register(websocket)
  await app.register(fastifyLinkServer, { pingIntervalMilliseconds: 0 })
  app.get('/other', { websocket: true }, (socket) => { socket.send('other route') })
  t.teardown(() => app.close())
  await app.ready()
  const client = await inject(app)
  t.strictSame(await client.linked('alice', 3), [frames.accepted, frames.joined('alice'), frames.linked('alice')])
})

t.test('registering the plugin twice in one context fails', async t => {
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(fastifyLinkServer, { pingIntervalMilliseconds: 0 })
  await t.rejects(async () => { await app.register(fastifyLinkServer, { path: '/second' }) }, { code: 'FST_ERR_DEC_ALREADY_PRESENT' })
})

t.test('with your own @fastify/websocket and a preClose that leaves the sockets open, users still hear that they left', async t => {
  const app = Fastify()
  await app.register(websocket, { preClose: (done) => done() })
  await app.register(fastifyLinkServer, { pingIntervalMilliseconds: 0 })
  await app.listen({ port: 0, host: '127.0.0.1' })
  const alice = await connect(app)
  await alice.linked('alice', 3)
  const closed = alice.closed()
  await app.close()
  t.strictSame(await alice.take(2), [frames.unlinked('alice'), frames.left('alice')])
  t.strictSame(await closed, { code: 1001, reason: 'server closing' })
})

t.test('on a real port, clients connect at the prefix and path', async t => {
  const app = Fastify()
  await app.register(async (child) => {
    await child.register(fastifyLinkServer, { path: '/link', pingIntervalMilliseconds: 0 })
  }, { prefix: '/v1' })
  t.teardown(() => app.close())
  await app.listen({ port: 0, host: '127.0.0.1' })
  const client = await connect(app, '/v1/link')
  t.strictSame(await client.linked('alice', 3), [frames.accepted, frames.joined('alice'), frames.linked('alice')])
})

t.test('with permessage-deflate negotiated, frames go through ws, compressed, and arrive whole and in order', async t => {
  const app = Fastify()
  await app.register(websocket, { options: { perMessageDeflate: { threshold: 0 } } })
  await app.register(fastifyLinkServer, { pingIntervalMilliseconds: 0 })
  await app.listen({ port: 0, host: '127.0.0.1' })
  t.teardown(() => app.close())
  const alice = await connect(app)
  t.equal(alice.ws.extensions, 'permessage-deflate')
  t.strictSame(await alice.linked('alice', 3), [frames.accepted, frames.joined('alice'), frames.linked('alice')])
  for (let i = 0; i < 3; i++) {
    app.linkServer.broadcast({ type: 'tick', payload: 'x'.repeat(200 * i) })
  }
  t.strictSame(await alice.take(3), [0, 1, 2].map(i => ({ type: 'tick', payload: 'x'.repeat(200 * i) })))
})

t.test('frames of every length encoding arrive whole: under 126 bytes, up to 64 KiB, and beyond', async t => {
  const app = await build(t, { listen: true })
  const alice = await connect(app)
  await alice.linked('alice', 3)
  const payloads = ['x', 'y'.repeat(1000), 'z'.repeat(70_000)]
  for (const payload of payloads) {
    app.linkServer.send('alice', { type: 'size', payload })
  }
  t.strictSame(await alice.take(3), payloads.map(payload => ({ type: 'size', payload })))
})
