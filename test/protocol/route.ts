import { once } from 'node:events'
import websocket from '@fastify/websocket'
import Fastify, { type FastifyInstance } from 'fastify'
import t from 'tap'
import fastifyLinkServer from '../../index.js'
import WebSocket from 'ws'
import { Client, connect, inject, urlOf } from '../helpers/clients.js'
import { frames } from '../helpers/frames.js'
import type { TestBackend } from '../helpers/app.js'

/** The route tests, on `backend`. */
export default function suite ({ build }: TestBackend): void {
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

  t.test('registering the plugin twice in one context, or again in a child of it, fails with a coded error', async t => {
    const app = Fastify()
    t.teardown(() => app.close())
    await app.register(fastifyLinkServer, { pingIntervalMilliseconds: 0 })
    await t.rejects(async () => { await app.register(fastifyLinkServer, { path: '/second' }) }, {
      code: 'FST_LINK_ALREADY_REGISTERED',
      message: 'fastify-link-server is already registered in this context (at /): register it once per context, or in sibling contexts with their own prefix'
    })
    const nested = Fastify()
    t.teardown(() => nested.close())
    await nested.register(fastifyLinkServer, { pingIntervalMilliseconds: 0 })
    await t.rejects(async () => {
      await nested.register(async child => { await child.register(fastifyLinkServer, { path: '/third' }) }, { prefix: '/v2' })
    }, {
      code: 'FST_LINK_ALREADY_REGISTERED',
      message: 'fastify-link-server is already registered in this context (at /v2): register it once per context, or in sibling contexts with their own prefix'
    })
  })

  t.test('two sibling contexts with their own prefix each have a link server of their own', async t => {
    const app = Fastify()
    t.teardown(() => app.close())
    const servers: Record<string, unknown> = {}
    for (const prefix of ['/lobby', '/game']) {
      await app.register(async child => {
        await child.register(fastifyLinkServer, { pingIntervalMilliseconds: 0 })
        servers[prefix] = child.linkServer
      }, { prefix })
    }
    await app.listen({ port: 0, host: '127.0.0.1' })
    t.not(servers['/lobby'], servers['/game'])
    const lobby = await connect(app, '/lobby')
    await lobby.linked('alice', 3)
    const game = await connect(app, '/game')
    t.strictSame(await game.linked('alice', 3), [frames.accepted, frames.joined('alice'), frames.linked('alice')], 'the same name is another user there')
  })

  t.test('the README advice for your own @fastify/websocket: the users hear that they left, your own sockets close, close does not hang', async t => {
    const app = Fastify()
    // The README's code, exactly:
    await app.register(websocket, { preClose: (done) => done() }) // the link server closes every socket itself, after its goodbye
    await app.register(fastifyLinkServer)
    app.get('/echo', { websocket: true }, (socket) => {
      socket.on('message', (data) => socket.send(data))
    })
    await app.listen({ port: 0, host: '127.0.0.1' })
    const alice = await connect(app)
    await alice.linked('alice', 3)
    const echo = new WebSocket(urlOf(app, '/echo'))
    await once(echo, 'open')
    const aliceClosed = alice.closed()
    const echoClosed = once(echo, 'close')
    await app.close()
    t.strictSame(await alice.take(2), [frames.unlinked('alice'), frames.left('alice')])
    t.strictSame(await aliceClosed, { code: 1001, reason: 'server closing' })
    const [code, reason] = await echoClosed as [number, Buffer]
    t.strictSame([code, reason.toString()], [1001, 'server closing'])
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
}
