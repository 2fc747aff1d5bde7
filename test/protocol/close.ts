import { once } from 'node:events'
import { performance } from 'node:perf_hooks'
import Fastify from 'fastify'
import t from 'tap'
import fastifyLinkServer from '../../index.js'
import { connect, unresponsive, urlOf } from '../helpers/clients.js'
import { record } from '../helpers/events.js'
import { frames } from '../helpers/frames.js'
import { timerCount } from '../helpers/waits.js'
import WebSocket from 'ws'
import type { TestBackend } from '../helpers/app.js'

/** The close tests, on `backend`. */
export default function suite (_backend: TestBackend): void {
  async function listening (options = {}, fastifyOptions = {}) {
    const app = Fastify(fastifyOptions)
    await app.register(fastifyLinkServer, { pingIntervalMilliseconds: 1000, ...options })
    await app.listen({ port: 0, host: '127.0.0.1' })
    return app
  }

  t.test('close: every user leaves, each connection is told of its own user, every socket is closed with 1001, then the close event; nothing is left behind', async t => {
    const timersBefore = timerCount()
    const app = await listening({ authTimeoutMilliseconds: 60_000 })
    app.linkServer.on('authenticate', (username, _info, _reject, markAsync) => {
      if (username === 'pending') {
        markAsync(() => new Promise(() => {}))
      }
    })
    const events = record(app)
    const alice = await connect(app)
    await alice.linked('alice', 3)
    const bob = await connect(app)
    await bob.linked('bob', 5)
    await alice.take(2)
    app.linkServer.join('carol')
    await alice.take(1)
    await bob.take(1)
    const idle = await connect(app)
    const pending = await connect(app)
    pending.requestLink('pending')
    await pending.settle()

    const closes = [alice, bob, idle, pending].map(client => client.closed())
    await app.close()
    t.strictSame(await Promise.all(closes), Array(4).fill({ code: 1001, reason: 'server closing' }))
    t.strictSame(await alice.take(2), [frames.unlinked('alice'), frames.left('alice')])
    t.strictSame(await bob.take(2), [frames.unlinked('bob'), frames.left('bob')])
    t.strictSame([alice.unread(), bob.unread(), idle.unread(), pending.unread()], [[], [], [], []], 'nothing else: the close code says the rest')
    t.strictSame(events.slice(5), [
      ['unlink', 'alice'], ['leave', 'alice'],
      ['unlink', 'bob'], ['leave', 'bob'],
      ['leave', 'carol'],
      ['close']
    ])
    t.strictSame(app.linkServer.getUsers(), [])
    t.equal(app.linkServer.getStatus(), 'closed')
    t.equal(app.linkServer.listenerCount('join'), 0, 'listeners are removed')
    t.equal(timerCount(), timersBefore, 'no timer is left')
  })

  t.test('a socket that never answers the close frame is terminated, so close does not hang', async t => {
    const app = await listening()
    const port = (app.server.address() as { port: number }).port
    const raw = await unresponsive(port)
    const received: Buffer[] = []
    raw.on('data', chunk => received.push(chunk))
    const ended = once(raw, 'close')
    await app.close()
    await ended
    t.strictSame(Buffer.concat(received), Buffer.concat([Buffer.from([0x88, 16, 0x03, 0xe9]), Buffer.from('server closing')]),
      'it was sent a close frame with 1001, then cut off instead of waiting for the 30 s of ws')
  })

  // With Fastify's return503OnClosing (the default) Fastify answers such an upgrade with 503 itself, before the route.
  t.test('drain: once closing began, an upgrade is refused with HTTP 503 at once, also with return503OnClosing false', async t => {
    const app = await listening({}, { return503OnClosing: false })
    const port = (app.server.address() as { port: number }).port
    await unresponsive(port) // holds the close open for its grace period
    const url = urlOf(app)
    const closing = app.close()
    await new Promise(resolve => setImmediate(resolve))
    t.equal(app.linkServer.getStatus(), 'closing')
    const ws = new WebSocket(url)
    const [, response] = await once(ws, 'unexpected-response') as [unknown, import('node:http').IncomingMessage]
    const chunks: Buffer[] = []
    for await (const chunk of response) {
      chunks.push(chunk as Buffer)
    }
    const body = JSON.parse(Buffer.concat(chunks).toString())
    t.equal(response.statusCode, 503)
    t.strictSame(body, { statusCode: 503, code: 'FST_LINK_CLOSING', error: 'Service Unavailable', message: 'The server is closing' })
    ws.on('error', () => {}) // ws reports the refused upgrade it is told to end
    ws.terminate()
    await closing
  })

  t.test('closeGraceMilliseconds: a socket that does not answer the close frame is terminated after it, not after the default 1 s', async t => {
    const app = await listening({ closeGraceMilliseconds: 1_500 })
    const raw = await unresponsive((app.server.address() as { port: number }).port)
    const ended = once(raw, 'close')
    const started = performance.now()
    await app.close()
    await ended
    t.ok(performance.now() - started >= 1_500, 'the close waited out the grace of the option')
  })

  t.test('a socket handed to the link server once it is closing is closed with 1001 (the route refuses such upgrades before)', async t => {
    const app = await listening()
    await app.close()
    const { WebSocketServer } = await import('ws')
    const plain = new WebSocketServer({ port: 0, host: '127.0.0.1' })
    t.teardown(() => plain.close())
    await once(plain, 'listening')
    const accepted = once(plain, 'connection') as Promise<[WebSocket, import('node:http').IncomingMessage]>
    const client = new WebSocket(`ws://127.0.0.1:${(plain.address() as { port: number }).port}`)
    const [socket] = await accepted
    const closed = once(client, 'close') as Promise<[number, Buffer]>
    ;(app.linkServer as unknown as { accept: (socket: WebSocket, request: unknown) => void }).accept(socket, {})
    const [code, reason] = await closed
    t.strictSame([code, reason.toString()], [1001, 'server closing'])
  })
}
