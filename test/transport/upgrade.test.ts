import { once } from 'node:events'
import { IncomingMessage } from 'node:http'
import t from 'tap'
import WebSocket from 'ws'
import { build } from '../helpers/app.js'
import { Client, inject, urlOf } from '../helpers/clients.js'
import { encodeText } from '../../lib/frames.js'
import { acceptInjectedVersion } from '../../lib/transport/upgrade.js'

// What a connection keeps of its upgrade request (lib/upgrade.ts): the request that authenticate gets on every
// link, with its decorations, headers, query, ip and signal, without the rest of the HTTP machinery.

t.test('the request of every link of a connection: the same object, its decoration, headers, query, ip, protocol; signal aborts at close', async t => {
  const seen: unknown[] = []
  const requests: unknown[] = []
  let signal: AbortSignal | undefined
  const app = await build(t, {
    listen: true,
    fastify: { trustProxy: true },
    setup: app => {
      app.decorateRequest('tenant', '')
      app.addHook('onRequest', async request => { (request as unknown as { tenant: string }).tenant = String(request.headers['x-tenant']) })
      app.linkServer.on('authenticate', (username, { request }) => {
        requests.push(request)
        signal ??= request.signal
        seen.push([username, (request as unknown as { tenant: string }).tenant, request.headers['x-tenant'], { ...request.query as object }, request.ip,
          request.ips, request.protocol, request.url, request.method, request.raw.httpVersion, signal.aborted])
      })
    }
  })
  const ws = new WebSocket(`${urlOf(app)}?room=blue`, { headers: { 'x-tenant': 'acme', 'x-forwarded-for': '203.0.113.7' } })
  await once(ws, 'open')
  const client = new Client(ws)
  await client.linked('alice', 3)
  client.send({ type: 'krmx/unlink' })
  await client.take(1)
  await client.linked('bob', 4) // alice is there, unlinked
  const [socket] = app.websocketServer.clients
  const transport = (socket as unknown as { _socket: { _httpMessage: unknown } })._socket
  t.strictSame([(requests[0] as { raw: object }).raw instanceof IncomingMessage, transport._httpMessage, socket.listenerCount('error')], [false, null, 1],
    'no IncomingMessage, no ServerResponse on the socket, and only the link server listens to its errors')
  const aborted = once(signal as AbortSignal, 'abort')
  ws.terminate()
  await aborted
  const expected = [['acme', 'acme', { room: 'blue' }, '203.0.113.7', ['127.0.0.1', '203.0.113.7'], 'http', '/?room=blue', 'GET', '1.1', false]]
  t.strictSame(seen, [['alice', ...expected[0]], ['bob', ...expected[0]]])
  t.equal(requests[0], requests[1], 'one request for every link of the connection')
  t.equal((signal as AbortSignal).aborted, true, 'the signal of the upgrade request aborts when the connection closes')
})

t.test('frames of every length encoding: the header, and the payload read back from the frame', async t => {
  for (const length of [0, 125, 126, 65_535, 65_536, 70_000]) {
    const text = 'x'.repeat(length)
    const frame = encodeText(text)
    const header = length < 126 ? 2 : length < 65_536 ? 4 : 10
    t.equal(frame.bytes.length, header + length, `${length}: the frame is the header and the text`)
    t.strictSame([...frame.bytes.subarray(0, 2)], [0x81, length < 126 ? length : length < 65_536 ? 126 : 127])
    t.equal(header === 2 ? frame.bytes[1] : header === 4 ? frame.bytes.readUInt16BE(2) : frame.bytes.readUIntBE(4, 6), length)
    t.equal(frame.payload.toString(), text)
  }
})

t.test('injectWS with a numeric sec-websocket-version (@fastify/websocket 11.3.7), which ws 8.23.1 refuses with 400, opens the link route', async t => {
  const headers: IncomingMessage['headers'] = { 'sec-websocket-version': 13 as unknown as string }
  acceptInjectedVersion(headers)
  t.strictSame(headers, { 'sec-websocket-version': '13' }, 'the number becomes the string it stands for')
  const real: IncomingMessage['headers'] = { 'sec-websocket-version': '8' }
  acceptInjectedVersion(real)
  const none: IncomingMessage['headers'] = {}
  acceptInjectedVersion(none)
  t.strictSame([real, none], [{ 'sec-websocket-version': '8' }, {}], 'a real header, or none, is left as it is')
  const app = await build(t)
  const client = await inject(app)
  t.strictSame(await client.link('alice'), [
    { type: 'krmx/accepted' },
    { type: 'krmx/joined', payload: { username: 'alice' } },
    { type: 'krmx/linked', payload: { username: 'alice' } }
  ])
})
