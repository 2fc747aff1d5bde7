import { once } from 'node:events'
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import websocket from '@fastify/websocket'
import Fastify from 'fastify'
import t from 'tap'
import WebSocket from 'ws'
import fastifyLinkServer from '../../index.js'
import { Client, connect, inject, upgrade, urlOf } from '../helpers/clients.js'
import { next, record } from '../helpers/events.js'
import { frames, version } from '../helpers/frames.js'
import { scrape } from '../helpers/metrics.js'
import { timerCount } from '../helpers/waits.js'
import type { TestBackend } from '../helpers/app.js'

/** The limits tests, on `backend`. */
export default function suite ({ build, linkedPair, memoryOnly }: TestBackend): void {
  /** Links `username` over `client` and reads the whole user list (`count` frames). */
  async function linkAs (client: Client, username: string, count: number): Promise<void> {
    const received = await client.linked(username, count)
    if (received[0].type !== 'krmx/accepted') {
      throw new Error(`${username} was not accepted: ${JSON.stringify(received)}`)
    }
  }

  /** A full garbage collection, from `--expose-gc` turned on at run time. */
  function collectGarbage (): void {
    setFlagsFromString('--expose-gc')
    ;(runInNewContext('gc') as () => void)()
  }

  t.test('maxPayload: a larger frame closes its connection with 1009 and unlinks its user; a frame at the limit passes', async t => {
    const app = await build(t, { listen: true, maxPayload: 1024 })
    const events = record(app)
    const alice = await connect(app)
    await linkAs(alice, 'alice', 3)
    const bob = await connect(app)
    await linkAs(bob, 'bob', 5)
    const atLimit = { type: 'note', payload: 'x'.repeat(1024 - JSON.stringify({ type: 'note', payload: '' }).length) }
    t.equal(JSON.stringify(atLimit).length, 1024)
    alice.send(atLimit)
    const closed = alice.closed()
    alice.send({ type: 'note', payload: 'x'.repeat(1024) })
    t.strictSame(await closed, { code: 1009, reason: '' })
    t.strictSame(await bob.take(1), [frames.unlinked('alice')])
    t.strictSame(events.slice(4), [['message', 'alice', atLimit], ['unlink', 'alice']])
    t.strictSame(app.linkServer.getUsers(), [{ username: 'alice', isLinked: false }, { username: 'bob', isLinked: true }])
  })

  t.test('maxPayload also holds when the application registered @fastify/websocket with a larger limit', async t => {
    const app = Fastify()
    await app.register(websocket, { options: { maxPayload: 1024 * 1024 } })
    await app.register(fastifyLinkServer, { maxPayload: 100, pingIntervalMilliseconds: 0 })
    await app.ready()
    const alice = new Client(await app.injectWS('/'))
    t.teardown(async () => {
      alice.ws.terminate()
      await app.close()
    })
    await linkAs(alice, 'alice', 3)
    const events = record(app)
    const closed = alice.closed()
    alice.send({ type: 'note', payload: 'x'.repeat(200) })
    t.strictSame(await closed, { code: 1009, reason: 'message too big' })
    t.strictSame(events, [['unlink', 'alice']], 'unlinked at once, not when the closing handshake ends')
  })

  t.test('linkTimeoutMilliseconds: a connection not linked in time is closed with 1008; a linked one stays; an unlinked one is timed again', memoryOnly(), async t => {
    const app = await build(t, { linkTimeoutMilliseconds: 100 })
    const timersBefore = timerCount()
    const idle = await inject(app)
    const linker = await inject(app)
    t.equal(timerCount(), timersBefore + 2, 'one link timer per connection that is not linked')
    await linkAs(linker, 'alice', 3)
    t.equal(timerCount(), timersBefore + 1, 'linking clears the timer')
    t.strictSame(await idle.closed(), { code: 1008, reason: 'link timeout' })
    t.strictSame(await linker.settle(), [], 'the linked connection is still open after the timeout')
    linker.send({ type: 'krmx/unlink' })
    t.strictSame(await linker.take(1), [frames.unlinked('alice')])
    t.strictSame(await linker.closed(), { code: 1008, reason: 'link timeout' })
    t.strictSame(app.linkServer.getUsers(), [{ username: 'alice', isLinked: false }])
  })

  t.test('linkTimeoutMilliseconds 0 starts no timer', memoryOnly(), async t => {
    const app = await build(t, { linkTimeoutMilliseconds: 0 })
    const timersBefore = timerCount()
    const idle = await inject(app)
    t.strictSame(await idle.settle(), [])
    t.equal(timerCount(), timersBefore)
  })

  t.test('a connection that closes before it links leaves no timer behind', memoryOnly(), async t => {
    const app = await build(t, { listen: true, linkTimeoutMilliseconds: 60_000 })
    const timersBefore = timerCount()
    const client = await connect(app)
    await client.settle()
    t.equal(timerCount(), timersBefore + 1)
    client.ws.close()
    await client.closed()
    while (app.linkServer.getStats().connections > 0) {
      await new Promise(resolve => setImmediate(resolve))
    }
    t.equal(timerCount(), timersBefore)
  })

  t.test('maxLinkAttempts: the connection is closed with 1008 after that many rejections in a row; a link resets the count', async t => {
    const app = await build(t, { maxLinkAttempts: 3 })
    const client = await inject(app)
    client.requestLink('!')
    client.requestLink('?')
    t.strictSame(await client.take(2), [frames.rejected('invalid username'), frames.rejected('invalid username')])
    await linkAs(client, 'alice', 3)
    client.send({ type: 'krmx/unlink' })
    await client.take(1)
    const closed = client.closed()
    client.requestLink('!')
    client.send({ type: 'chat/say' })
    client.requestLink('?')
    client.requestLink('alice')
    t.strictSame(await client.take(3), [frames.rejected('invalid username'), frames.rejected('unlinked connection'), frames.rejected('invalid username')])
    t.strictSame(await closed, { code: 1008, reason: 'too many rejected link requests' })
    t.strictSame(app.linkServer.getUsers(), [{ username: 'alice', isLinked: false }], 'the frame after the last rejection was not handled')
  })

  t.test('maxLinkAttempts 0 never closes a connection for its rejections', async t => {
    const app = await build(t, { maxLinkAttempts: 0 })
    const client = await inject(app)
    for (let i = 0; i < 50; i++) {
      client.requestLink('!')
    }
    t.strictSame(await client.take(50), Array.from({ length: 50 }, () => frames.rejected('invalid username')))
    await linkAs(client, 'alice', 3)
  })

  t.test('rateLimit: a burst within the budget is fine; the frame beyond it unlinks the user and closes with 1008', async t => {
    const app = await build(t, { rateLimit: { rate: 0.001, burst: 6 }, metrics: true })
    const alice = await inject(app)
    await linkAs(alice, 'alice', 3) // the link frame took one token
    const bob = await inject(app)
    await linkAs(bob, 'bob', 5)
    await alice.take(2)
    const events = record(app)
    const closed = alice.closed()
    for (let i = 0; i < 6; i++) {
      alice.send({ type: 'tick', payload: i })
    }
    t.strictSame(await alice.take(1), [frames.unlinked('alice')])
    t.strictSame(await closed, { code: 1008, reason: 'rate limit exceeded' })
    t.strictSame(await bob.take(1), [frames.unlinked('alice')])
    t.strictSame(events, [
      ['message', 'alice', { type: 'tick', payload: 0 }],
      ['message', 'alice', { type: 'tick', payload: 1 }],
      ['message', 'alice', { type: 'tick', payload: 2 }],
      ['message', 'alice', { type: 'tick', payload: 3 }],
      ['message', 'alice', { type: 'tick', payload: 4 }],
      ['unlink', 'alice']
    ])
    const samples = await scrape(app)
    t.strictSame([samples.link_server_rate_limited_total, samples['link_server_unlinks_total{cause="limit"}']], [1, 1])
  })

  t.test('rateLimit: an unlinked connection that floods is closed too', async t => {
    const app = await build(t, { rateLimit: { rate: 0.001, burst: 2 }, maxLinkAttempts: 0 })
    const client = await inject(app)
    const closed = client.closed()
    client.send({ type: 'chat/say' })
    client.send({ type: 'chat/say' })
    client.send({ type: 'chat/say' })
    t.strictSame(await client.take(2), [frames.rejected('unlinked connection'), frames.rejected('unlinked connection')])
    t.strictSame(await closed, { code: 1008, reason: 'rate limit exceeded' })
  })

  t.test('rateLimit: tokens come back at the rate, up to the burst', async t => {
    let now = 1_000
    const clock = { 'node:perf_hooks': { performance: { now: () => now } } }
    const { default: plugin } = await t.mockImport<typeof import('../../index.js')>('../../index.js', {
      '../../lib/link-server.js': await t.mockImport('../../lib/link-server.js', {
        '../../lib/transport/gateway.js': await t.mockImport('../../lib/transport/gateway.js', clock)
      })
    })
    const app = Fastify()
    await app.register(plugin, { rateLimit: { rate: 10, burst: 3 }, pingIntervalMilliseconds: 0, linkTimeoutMilliseconds: 0 })
    await app.ready()
    const alice = new Client(await app.injectWS('/'))
    t.teardown(async () => {
      alice.ws.terminate()
      await app.close()
    })
    await linkAs(alice, 'alice', 3) // 2 tokens left
    const events = record(app)
    alice.send({ type: 'a' })
    alice.send({ type: 'b' })
    await alice.settle()
    now += 250 // 2.5 tokens back
    alice.send({ type: 'c' })
    alice.send({ type: 'd' })
    await alice.settle()
    now += 10_000 // back to the burst, not beyond
    alice.send({ type: 'e' })
    alice.send({ type: 'f' })
    alice.send({ type: 'g' })
    await alice.settle()
    const closed = alice.closed()
    alice.send({ type: 'h' })
    t.strictSame(await closed, { code: 1008, reason: 'rate limit exceeded' })
    t.strictSame(events.map(([name, , message]) => name === 'message' ? (message as { type: string }).type : name), ['a', 'b', 'c', 'd', 'e', 'f', 'g', 'unlink'])
  })

  t.test('rateLimit false lets a connection send as fast as it likes', async t => {
    const { app, alice, events } = await linkedPair(t, { rateLimit: false })
    for (let i = 0; i < 1000; i++) {
      alice.send({ type: 'tick' })
    }
    await alice.settle()
    t.equal(events.length, 1000)
    t.strictSame(app.linkServer.getUsers(), [{ username: 'alice', isLinked: true }, { username: 'bob', isLinked: true }])
  })

  t.test('maxUsers: a link that would create one more user is rejected with server is full; existing users still link', async t => {
    const app = await build(t, { maxUsers: 2 })
    await app.linkServer.join('alice')
    const bob = await inject(app)
    await linkAs(bob, 'bob', 4)
    const carol = await inject(app)
    carol.requestLink('carol')
    t.strictSame(await carol.take(1), [frames.rejected('server is full')])
    t.throws(() => app.linkServer.join('dave'), {
      code: 'FST_LINK_SERVER_FULL', message: 'Cannot join user "dave": the server is full (maxUsers 2)'
    })
    await linkAs(carol, 'alice', 5)
    await app.linkServer.kick('bob')
    await carol.take(2)
    const dave = await inject(app)
    await linkAs(dave, 'dave', 5)
    t.strictSame(app.linkServer.getUsers(), [{ username: 'alice', isLinked: true }, { username: 'dave', isLinked: true }])
  })

  t.test('maxUsers: of two new users authenticated at once, the one decided second is rejected if the first filled the server', async t => {
    const app = await build(t, { maxUsers: 1 })
    const releases: Array<() => void> = []
    app.linkServer.on('authenticate', (_username, _info, _reject, markAsync) => {
      markAsync(() => new Promise<void>(resolve => releases.push(resolve)))
    })
    const alice = await inject(app)
    const bob = await inject(app)
    alice.requestLink('alice')
    bob.requestLink('bob')
    while (releases.length < 2) {
      await new Promise(resolve => setImmediate(resolve))
    }
    releases[0]()
    t.strictSame(await alice.take(3), [frames.accepted, frames.joined('alice'), frames.linked('alice')])
    releases[1]()
    t.strictSame(await bob.take(1), [frames.rejected('server is full')])
    t.strictSame(app.linkServer.getUsers(), [{ username: 'alice', isLinked: true }])
  })

  t.test('maxConnections: an upgrade beyond it is refused with HTTP 503 before the WebSocket opens', async t => {
    const app = await build(t, { listen: true, maxConnections: 2 })
    const first = await connect(app)
    await connect(app)
    t.strictSame(await upgrade(urlOf(app)), {
      status: 503,
      body: { statusCode: 503, code: 'FST_LINK_TOO_MANY_CONNECTIONS', error: 'Service Unavailable', message: 'Too many connections' }
    })
    t.equal(app.linkServer.getStats().connections, 2)
    await linkAs(first, 'alice', 3)
    const unlinked = next(app, 'unlink')
    first.ws.close()
    await unlinked
    while (app.linkServer.getStats().connections > 1) {
      await new Promise(resolve => setImmediate(resolve))
    }
    const third = await upgrade(urlOf(app))
    t.equal(third.status, 101, 'a place is free again')
    third.ws?.terminate()
  })

  t.test('a plain HTTP GET on the route is answered 404 whatever the limits', async t => {
    const app = await build(t, { maxConnections: 1, allowedOrigins: ['https://chat.example'] })
    const response = await app.inject({ url: '/', headers: { origin: 'https://evil.example' } })
    t.equal(response.statusCode, 404)
  })

  t.test('allowedOrigins: an upgrade from another origin is refused with HTTP 403; listed origins and non-browser clients pass', async t => {
    const app = await build(t, { listen: true, allowedOrigins: ['https://chat.example'] })
    t.strictSame(await upgrade(urlOf(app), { origin: 'https://evil.example' }), {
      status: 403,
      body: { statusCode: 403, code: 'FST_LINK_ORIGIN_NOT_ALLOWED', error: 'Forbidden', message: 'Origin https://evil.example is not allowed' }
    })
    const allowed = await upgrade(urlOf(app), { origin: 'https://chat.example' })
    const nonBrowser = await upgrade(urlOf(app))
    t.strictSame([allowed.status, nonBrowser.status], [101, 101])
    allowed.ws?.terminate()
    nonBrowser.ws?.terminate()
  })

  t.test('allowedOrigins as a predicate decides with the origin and the request; one that throws refuses and is logged', async t => {
    const logs: Array<Record<string, unknown>> = []
    const stream = { write: (line: string) => { logs.push(JSON.parse(line)) } }
    const seen: unknown[] = []
    const app = await build(t, {
      listen: true,
      fastify: { logger: { level: 'error', stream } },
      allowedOrigins: (origin, request) => {
        seen.push([origin, request.headers['x-tenant']])
        if (origin === 'https://broken.example') {
          throw new Error('predicate failed')
        }
        return origin === undefined || origin.endsWith('.chat.example')
      }
    })
    const refused = await upgrade(urlOf(app), { origin: 'https://evil.example', headers: { 'x-tenant': 't1' } })
    const broken = await upgrade(urlOf(app), { origin: 'https://broken.example' })
    const allowed = await upgrade(urlOf(app), { origin: 'https://eu.chat.example' })
    t.strictSame([refused.status, broken.status, allowed.status], [403, 403, 101])
    allowed.ws?.terminate()
    t.strictSame(seen, [['https://evil.example', 't1'], ['https://broken.example', undefined], ['https://eu.chat.example', undefined]])
    t.strictSame(logs.map(({ msg, origin, err }) => [msg, origin, (err as { message: string }).message]), [
      ['allowedOrigins threw; the origin is refused', 'https://broken.example', 'predicate failed']
    ])
  })

  /** A linked client over a real socket that keeps nothing it receives, only counts the `tick` frames and checks their order. */
  async function countingClient (app: Parameters<typeof urlOf>[0], username: string) {
    const ws = new WebSocket(urlOf(app))
    await once(ws, 'open')
    const count = { frames: 0, next: 0, outOfOrder: 0 }
    const linked = new Promise<void>(resolve => ws.on('message', (data: Buffer) => {
      const frame = JSON.parse(data.toString()) as { type: string, payload: { n: number, username: string } }
      if (frame.type === 'tick') {
        count.outOfOrder += frame.payload.n === count.next ? 0 : 1
        count.next = frame.payload.n + 1
        count.frames++
      } else if (frame.type === 'krmx/linked' && frame.payload.username === username) {
        resolve()
      }
    }))
    ws.send(JSON.stringify({ type: 'krmx/link', payload: { username, version } }))
    await linked
    return { ws, count }
  }

  t.test('maxBufferedBytes: a client that stops reading is cut off while the others receive every frame of 50,000 broadcasts of 1 KB', async t => {
    const app = await build(t, { listen: true, maxBufferedBytes: 1024 * 1024, metrics: true })
    const good = [await countingClient(app, 'good0'), await countingClient(app, 'good1')]
    const slow = await countingClient(app, 'slow')
    const slowSocket = (slow.ws as unknown as { _socket: { pause: () => void } })._socket
    slowSocket.pause() // it stops reading: the kernel's buffers fill, then the server's
    const unlinked = next(app, 'unlink')
    const filler = 'x'.repeat(1000)
    collectGarbage()
    const start = process.memoryUsage()
    let peakBytes = 0
    let peakHeap = 0
    for (let batch = 0; batch < 500; batch++) {
      for (let i = 0; i < 100; i++) {
        app.linkServer.broadcast({ type: 'tick', payload: { n: batch * 100 + i, filler } })
      }
      await new Promise(resolve => setImmediate(resolve))
      peakBytes = Math.max(peakBytes, process.memoryUsage().arrayBuffers - start.arrayBuffers)
      if (batch % 50 === 49) {
        collectGarbage() // what the process holds on to, not the garbage of the frames already sent
        peakHeap = Math.max(peakHeap, process.memoryUsage().heapUsed - start.heapUsed)
      }
    }
    t.strictSame(await unlinked, ['slow'])
    await Promise.all(good.map(async ({ ws, count }) => {
      while (count.frames < 50_000) {
        await once(ws, 'message')
      }
    }))
    t.strictSame(good.map(({ count }) => count), [{ frames: 50_000, next: 50_000, outOfOrder: 0 }, { frames: 50_000, next: 50_000, outOfOrder: 0 }])
    // Without the cut the slow client alone would hold most of its 50 MB in the server's socket buffer.
    t.ok(peakBytes < 16 * 1024 * 1024, `socket buffers peaked ${(peakBytes / 1024 / 1024).toFixed(1)} MiB above the start (bound 16 MiB)`)
    t.ok(peakHeap < 16 * 1024 * 1024, `the live heap peaked ${(peakHeap / 1024 / 1024).toFixed(1)} MiB above the start (bound 16 MiB)`)
    t.strictSame(app.linkServer.getUsers(), [
      { username: 'good0', isLinked: true }, { username: 'good1', isLinked: true }, { username: 'slow', isLinked: false }
    ])
    const samples = await scrape(app)
    t.strictSame([samples.link_server_slow_consumers_total, samples['link_server_unlinks_total{cause="limit"}']], [1, 1])
    for (const { ws } of [...good, slow]) {
      ws.terminate()
    }
  })
}
