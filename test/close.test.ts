import { once } from 'node:events'
import Fastify from 'fastify'
import t from 'tap'
import fastifyLinkServer from '../index.js'
import { Client, connect, frames, record, urlOf, timerCount, unresponsive } from './helper.js'
import WebSocket from 'ws'

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
  pending.link('pending')
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

t.test('with return503OnClosing false, a connection that arrives while the server closes is closed with 1001', async t => {
  const app = await listening({}, { return503OnClosing: false })
  const port = (app.server.address() as { port: number }).port
  await unresponsive(port) // holds the close open for its grace period
  const url = urlOf(app)
  const closing = app.close()
  await new Promise(resolve => setImmediate(resolve))
  t.equal(app.linkServer.getStatus(), 'closing')
  const ws = new WebSocket(url)
  t.strictSame(await new Client(ws).closed(), { code: 1001, reason: 'server closing' })
  await closing
})
