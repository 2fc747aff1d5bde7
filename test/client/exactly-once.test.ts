import { createServer, type Server, Socket } from 'node:net'
import websocket from '@fastify/websocket'
import Fastify, { type FastifyInstance } from 'fastify'
import t, { type Test } from 'tap'
import WebSocket from 'ws'
import { createLinkClient, type LinkClient, type LinkClientOptions } from '../../client.js'
import fastifyLinkServer, { type LinkServerOptions } from '../../index.js'
import { build } from '../helpers/app.js'
import { urlOf } from '../helpers/clients.js'
import { eventually } from '../helpers/waits.js'

// Exactly-once delivery with replay on, across drops: the session extension (docs/protocol.md#the-session-extension)
// between fastify-link-server/client and a real server, on loopback sockets.

/** ws' WebSocket, recording every socket a client opens, so that a test can cut the newest from the client's side. */
function recordingSocket (): { Socket: LinkClientOptions['WebSocket'], sockets: WebSocket[] } {
  const sockets: WebSocket[] = []
  class Recorded extends WebSocket {
    constructor (url: string) {
      super(url)
      sockets.push(this)
    }
  }
  return { Socket: Recorded as unknown as LinkClientOptions['WebSocket'], sockets }
}

/** What a client hands the app: the numbers of the `count` messages, and every other event, in order. */
function heard (client: LinkClient): { numbers: number[], events: string[] } {
  const seen = { numbers: [] as number[], events: [] as string[] }
  client.on('message', message => {
    if (message.type === 'count') {
      seen.numbers.push(message.payload as number)
    } else {
      seen.events.push(`message ${JSON.stringify(message)}`)
    }
  })
  client.on('lost', count => seen.events.push(`lost ${count}`))
  return seen
}

/** Whether `numbers` is 1 to `count`, each once, in order; else where it goes wrong. */
function firstFault (numbers: number[], count: number): string | undefined {
  for (let i = 0; i < Math.max(numbers.length, count); i++) {
    if (numbers[i] !== i + 1) {
      return `at index ${i}: ${String(numbers[i])} (around: ${JSON.stringify(numbers.slice(Math.max(0, i - 3), i + 3))}), ${numbers.length} numbers in all`
    }
  }
  return undefined
}

/** Sends `count/<n>` to `username`, `count` messages, one every `everyMilliseconds`; resolves when all were sent. */
async function sendNumbers (app: FastifyInstance, username: string, count: number, everyMilliseconds: number): Promise<void> {
  for (let n = 1; n <= count; n++) {
    app.linkServer.send(username, { type: 'count', payload: n })
    if (n % 4 === 0) {
      await new Promise(resolve => setTimeout(resolve, everyMilliseconds))
    }
  }
}

const sessions = { replay: { maxMessages: 100_000 }, reconnectWindowMilliseconds: 60_000 } satisfies LinkServerOptions

t.test('exactly-once across 100 random abrupt cuts, from either side, while the server sends numbered messages: every number once, in order', async t => {
  const app = await build(t, { listen: true, ...sessions })
  const { Socket, sockets } = recordingSocket()
  const alice = createLinkClient(urlOf(app, '/'), { WebSocket: Socket, reconnect: { initialDelayMilliseconds: 5, maxDelayMilliseconds: 20 } })
  t.teardown(() => alice.close())
  const seen = heard(alice)
  await alice.link('alice')
  let seed = 26
  const random = (): number => { seed = (seed * 1_103_515_245 + 12_345) % 2_147_483_648; return seed / 2_147_483_648 }
  const count = 4_000
  const sending = sendNumbers(app, 'alice', count, 2)
  let cuts = 0
  while (cuts < 100) {
    await new Promise(resolve => setTimeout(resolve, 2 + Math.floor(random() * 20)))
    if (alice.getSnapshot().status !== 'linked' || sockets.length === cuts) {
      continue // each cut cuts a connection of its own, once linked
    }
    if (random() < 0.5) {
      for (const socket of app.websocketServer.clients) {
        socket.terminate() // the server's side: no close frame
      }
    } else {
      (sockets.at(-1) as WebSocket).terminate() // the client's side: the socket is destroyed
    }
    cuts++
  }
  await sending
  await eventually(() => seen.numbers.length >= count && alice.getSnapshot().status === 'linked',
    () => `${seen.numbers.length} of ${count}; ${firstFault(seen.numbers, count) ?? ''}`, 20_000)
  t.equal(firstFault(seen.numbers, count), undefined, `${count} numbers, each once, in order, across ${cuts} cuts`)
  t.strictSame(seen.events, [], 'nothing was lost, nothing else arrived')
  t.ok(sockets.length >= cuts + 1, `a connection of its own for each cut, and the first: ${sockets.length}`)
})

/**
 * A TCP proxy on loopback between the client and the server that can go silent: a frozen pair of sockets forwards
 * nothing and closes nothing, as a network that vanished (a phone in a tunnel). New connections pass.
 */
async function proxy (t: Test, port: number): Promise<{ url: string, freeze: () => void }> {
  const pairs: Array<[Socket, Socket]> = []
  const server: Server = createServer(client => {
    const upstream = new Socket()
    upstream.connect(port, '127.0.0.1')
    const pair: [Socket, Socket] = [client, upstream]
    pairs.push(pair)
    for (const [from, to] of [[client, upstream], [upstream, client]]) {
      from.on('data', data => { if (!frozen.has(pair)) to.write(data) })
      from.on('close', () => { if (!frozen.has(pair)) to.destroy() })
      from.on('error', () => {})
    }
  })
  const frozen = new Set<[Socket, Socket]>()
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => {
    for (const [a, b] of pairs) {
      a.destroy()
      b.destroy()
    }
    server.close()
  })
  return {
    url: `ws://127.0.0.1:${(server.address() as { port: number }).port}/`,
    freeze: () => { for (const pair of pairs) frozen.add(pair) }
  }
}

t.test('a half-open connection (the network went silent, no close) is found by the heartbeat; what was written into it comes once', async t => {
  const app = await build(t, { listen: true, ...sessions, pingIntervalMilliseconds: 200 })
  const silent = await proxy(t, (app.server.address() as { port: number }).port)
  const alice = createLinkClient([silent.url], {
    WebSocket: WebSocket as unknown as LinkClientOptions['WebSocket'], heartbeatMilliseconds: 100, reconnect: { initialDelayMilliseconds: 20, maxDelayMilliseconds: 100 }, alreadyLinkedRetries: 100
  })
  t.teardown(() => alice.close())
  const seen = heard(alice)
  const statuses: string[] = []
  alice.on('status', status => statuses.push(status))
  await alice.link('alice')
  await sendNumbers(app, 'alice', 40, 1)
  await eventually(() => seen.numbers.length === 40, () => JSON.stringify(seen))
  silent.freeze()
  for (let n = 41; n <= 80; n++) {
    app.linkServer.send('alice', { type: 'count', payload: n }) // into the silent connection: not confirmed
  }
  await eventually(() => seen.numbers.length === 80, () => `${JSON.stringify(seen)} ${JSON.stringify(statuses)}`, 10_000)
  t.equal(firstFault(seen.numbers, 80), undefined, 'every number once, in order')
  t.strictSame(statuses, ['connecting', 'linking', 'linked', 'reconnecting', 'linked'], 'the client found the dead connection by itself')
  t.strictSame(seen.events, [])
})

t.test('the client says how many messages the server could no longer replay (its bounds dropped them), and goes on from there', async t => {
  const app = await build(t, { listen: true, replay: { maxMessages: 3 }, reconnectWindowMilliseconds: 60_000 })
  const alice = createLinkClient(urlOf(app, '/'), { WebSocket: WebSocket as unknown as LinkClientOptions['WebSocket'], reconnect: { initialDelayMilliseconds: 300 }, random: () => 0.99 })
  t.teardown(() => alice.close())
  const seen = heard(alice)
  await alice.link('alice')
  app.linkServer.send('alice', { type: 'count', payload: 1 })
  await eventually(() => seen.numbers.length === 1, () => JSON.stringify(seen))
  const unlinked = new Promise(resolve => app.linkServer.once('unlink', resolve))
  for (const socket of app.websocketServer.clients) {
    socket.terminate()
  }
  await unlinked
  for (let n = 2; n <= 7; n++) {
    app.linkServer.send('alice', { type: 'count', payload: n })
  }
  await eventually(() => seen.numbers.length === 4, () => JSON.stringify(seen), 10_000)
  t.strictSame(seen, { numbers: [1, 5, 6, 7], events: ['lost 3'] })
})

t.test('given a list of URLs, each new connection goes to the next: a dead instance is passed over', async t => {
  const app = await build(t, { listen: true, ...sessions })
  const dead = createServer()
  await new Promise<void>(resolve => dead.listen(0, '127.0.0.1', resolve))
  const deadUrl = `ws://127.0.0.1:${(dead.address() as { port: number }).port}/`
  await new Promise(resolve => dead.close(resolve)) // a port nothing listens on
  t.throws(() => createLinkClient([], { WebSocket: WebSocket as unknown as LinkClientOptions['WebSocket'] }), { message: 'createLinkClient needs a URL, or a list of at least one' })
  const { Socket, sockets } = recordingSocket()
  const alice = createLinkClient([urlOf(app, '/'), deadUrl], { WebSocket: Socket, reconnect: { initialDelayMilliseconds: 5, maxDelayMilliseconds: 5 } })
  t.teardown(() => alice.close())
  await alice.link('alice')
  for (const socket of app.websocketServer.clients) {
    socket.terminate()
  }
  await eventually(() => alice.getSnapshot().status === 'linked' && sockets.length === 3, () => `${sockets.length} ${alice.getSnapshot().status}`)
  t.strictSame(sockets.map(socket => socket.url), [urlOf(app, '/'), deadUrl, urlOf(app, '/')])
})

t.test('a new client given getSession() of the one before it (a page reload) goes on after its last message', async t => {
  const app = await build(t, { listen: true, ...sessions })
  const WebSocketClass = WebSocket as unknown as LinkClientOptions['WebSocket']
  const first = createLinkClient(urlOf(app, '/'), { WebSocket: WebSocketClass })
  t.equal(first.getSession(), undefined, 'none before a link')
  const before = heard(first)
  await first.link('alice')
  for (let n = 1; n <= 3; n++) {
    app.linkServer.send('alice', { type: 'count', payload: n })
  }
  await eventually(() => before.numbers.length === 3, () => JSON.stringify(before))
  const session = first.getSession()
  t.ok(Number.isInteger(session?.user), `the user's join order: ${String(session?.user)}`)
  t.strictSame(session, { user: session?.user, last: 3 })
  const unlinked = new Promise(resolve => app.linkServer.once('unlink', resolve))
  first.close()
  await unlinked
  for (let n = 4; n <= 5; n++) {
    app.linkServer.send('alice', { type: 'count', payload: n })
  }
  const second = createLinkClient(urlOf(app, '/'), { WebSocket: WebSocketClass, session: JSON.parse(JSON.stringify(session)) })
  t.teardown(() => second.close())
  const after = heard(second)
  const linked = new Promise(resolve => app.linkServer.once('link', (_username, info) => resolve(info.replay)))
  await second.link('alice')
  t.strictSame(await linked, { replayed: 2, lost: 0 })
  await eventually(() => after.numbers.length === 2, () => JSON.stringify(after))
  t.strictSame(after, { numbers: [4, 5], events: [] })
  t.strictSame(second.getSession(), { user: session?.user, last: 5 })
})

t.test('with permessage-deflate negotiated, numbered messages go through ws, compressed, whole, each once across a cut', async t => {
  const app = Fastify()
  await app.register(websocket, { options: { perMessageDeflate: { threshold: 0 } } })
  await app.register(fastifyLinkServer, { pingIntervalMilliseconds: 0, ...sessions })
  await app.listen({ port: 0, host: '127.0.0.1' })
  t.teardown(() => app.close())
  const { Socket, sockets } = recordingSocket()
  const alice = createLinkClient(urlOf(app, '/'), { WebSocket: Socket, reconnect: { initialDelayMilliseconds: 5, maxDelayMilliseconds: 5 } })
  t.teardown(() => alice.close())
  const seen = heard(alice)
  await alice.link('alice')
  t.equal(sockets[0].extensions, 'permessage-deflate')
  await sendNumbers(app, 'alice', 50, 1)
  await eventually(() => seen.numbers.length === 50, () => JSON.stringify(seen))
  for (const socket of app.websocketServer.clients) {
    socket.terminate()
  }
  for (let n = 51; n <= 60; n++) {
    app.linkServer.send('alice', { type: 'count', payload: n })
  }
  await eventually(() => seen.numbers.length === 60, () => JSON.stringify(seen))
  t.equal(firstFault(seen.numbers, 60), undefined, 'every number once, in order')
})
