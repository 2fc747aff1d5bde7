import { once } from 'node:events'
import { connect as tcpConnect, type Socket } from 'node:net'
import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify'
import type { Test } from 'tap'
import WebSocket from 'ws'
import fastifyLinkServer, { type LinkServerEvents, type LinkServerOptions } from '../index.js'
import { injectSocket, LinkTestClient, type TestFrame, testClientVersion } from '../testing.js'

/** The Krmx client version the tests link with. */
export const version = testClientVersion

export interface BuildOptions extends LinkServerOptions {
  /** Called after the plugin is registered, before the instance is ready. */
  setup?: (app: FastifyInstance) => void
  /** Bind a real loopback port. */
  listen?: boolean
  fastify?: FastifyServerOptions
}

/** The Redis every instance `build` makes runs on, each in a namespace of its own: the protocol tests on a one-node cluster. */
let clusterRedis: string | undefined
let clusterNamespaces = 0

/** Makes `build` put every instance it makes in cluster mode on `url`; see test/protocol-on-redis.test.ts. */
export function useCluster (url: string): void {
  clusterRedis = url
}

/** Skips a test of what only the in-memory backend shows (`reason`), when `build` makes cluster instances. */
export function memoryOnly (reason = 'counts the timers of the process, which the Redis client adds to'): { skip: string | false } {
  return { skip: clusterRedis === undefined ? false : reason }
}

/** A ready Fastify instance with the plugin registered, closed when the test ends. */
export async function build (t: Test, options: BuildOptions = {}): Promise<FastifyInstance> {
  const { setup, listen, fastify, ...pluginOptions } = options
  const app = Fastify(fastify)
  const cluster = clusterRedis === undefined ? {} : { cluster: { redis: clusterRedis, namespace: `protocol-${process.pid}-${++clusterNamespaces}` } }
  await app.register(fastifyLinkServer, { pingIntervalMilliseconds: 0, linkTimeoutMilliseconds: 0, ...cluster, ...pluginOptions })
  setup?.(app)
  t.teardown(async () => {
    // injectWS streams never report the end of a closing handshake, so the server would wait out
    // its grace period for each of them; cutting them first keeps the suite fast.
    for (const client of injected.get(app) ?? []) {
      client.ws.terminate()
    }
    await app.close()
  })
  if (listen === true) {
    await app.listen({ port: 0, host: '127.0.0.1' })
  } else {
    await app.ready()
  }
  return app
}

/** The `ws://` URL of a listening instance. */
export function urlOf (app: FastifyInstance, path = '/'): string {
  const address = app.server.address() as { port: number }
  return `ws://127.0.0.1:${address.port}${path}`
}

export type Received = TestFrame

/**
 * A test client over a `ws` WebSocket: the test kit's (`fastify-link-server/testing`), which the plugin's own tests
 * use, with what only they need beside it.
 */
export class Client extends LinkTestClient {
  /** The pings of the server that arrived, and how many of them `confirmed` waited for. */
  #pings = 0
  #pingsAwaited = 0

  constructor (ws: WebSocket) {
    super(ws)
    ws.on('ping', () => { this.#pings++ })
  }

  override async take (count: number, timeoutMilliseconds = 10_000): Promise<Received[]> {
    return super.take(count, timeoutMilliseconds)
  }

  /**
   * With replay on: waits for the server's next ping (which asks to confirm what it sent), then for the server
   * to have read the answer (see `settle`), so that what arrived so far is confirmed.
   */
  async confirmed (): Promise<void> {
    await eventually(() => this.#pings > this.#pingsAwaited, () => `no ping after ${this.#pingsAwaited}`)
    this.#pingsAwaited = this.#pings
    await this.settle()
  }

  /** Links and waits for the accepted frame and the whole user list (the number of frames the caller expects). */
  async linked (username: string, frameCount: number): Promise<Received[]> {
    this.requestLink(username)
    return this.take(frameCount)
  }
}

const injected = new WeakMap<FastifyInstance, Client[]>()

/** Opens an in-process connection with `injectWS`. */
export async function inject (app: FastifyInstance, path = '/'): Promise<Client> {
  const client = new Client(await injectSocket(app, path))
  const clients = injected.get(app) ?? []
  clients.push(client)
  injected.set(app, clients)
  return client
}

/** Opens a real loopback connection to a listening instance. */
export async function connect (app: FastifyInstance, path = '/'): Promise<Client> {
  const ws = new WebSocket(urlOf(app, path))
  await once(ws, 'open')
  return new Client(ws)
}

/** One line of the instance's log, as pino writes it. */
export interface LogLine {
  level: number
  msg: string
  [key: string]: unknown
}

/** Collects what the instance logs: pass `stream` as the logger's stream, then await the lines. */
export class LogRecorder {
  readonly lines: LogLine[] = []
  #wake: (() => void) | undefined
  readonly stream = {
    write: (line: string): void => {
      this.lines.push(JSON.parse(line) as LogLine)
      this.#wake?.()
    }
  }

  /** Waits until `count` lines were logged and returns them all; after `timeoutMilliseconds` it fails, naming what was logged. */
  async count (count: number, timeoutMilliseconds = 10_000): Promise<LogLine[]> {
    const deadline = Date.now() + timeoutMilliseconds
    while (this.lines.length < count) {
      const woken = await new Promise<boolean>(resolve => {
        const timer = setTimeout(resolve, deadline - Date.now(), false)
        this.#wake = () => { clearTimeout(timer); resolve(true) }
      })
      if (!woken) {
        throw new Error(`expected ${count} log lines, ${this.lines.length} were logged: ${JSON.stringify(this.lines)}`)
      }
    }
    return this.lines
  }
}

export type RecordedEvent = [keyof LinkServerEvents, ...unknown[]]

/** Records the lifecycle events of the link server (all but `authenticate`), in order. */
export function record (app: FastifyInstance): RecordedEvent[] {
  const events: RecordedEvent[] = []
  const names = ['listen', 'close', 'join', 'link', 'unlink', 'leave', 'message', 'invalidMessage'] as const
  for (const name of names) {
    app.linkServer.on(name, (...args: unknown[]) => {
      // A link that attached no data with replay off says nothing beside its username: recorded as [link, username].
      const info = args[1] as { data?: unknown, replay?: unknown } | undefined
      if (name === 'link' && info !== undefined && info.data === undefined && info.replay === undefined && Object.keys(info).length === 2) {
        args = [args[0]]
      }
      events.push([name, ...args])
    })
  }
  return events
}

/** Resolves with the arguments of the next `event` of the link server. */
export function next<E extends keyof LinkServerEvents> (app: FastifyInstance, event: E): Promise<Parameters<LinkServerEvents[E]>> {
  return new Promise(resolve => {
    app.linkServer.once(event, ((...args: Parameters<LinkServerEvents[E]>) => resolve(args)) as LinkServerEvents[E])
  })
}

export const frames = {
  accepted: { type: 'krmx/accepted' },
  rejected: (reason: string) => ({ type: 'krmx/rejected', payload: { reason } }),
  joined: (username: string) => ({ type: 'krmx/joined', payload: { username } }),
  linked: (username: string) => ({ type: 'krmx/linked', payload: { username } }),
  unlinked: (username: string) => ({ type: 'krmx/unlinked', payload: { username } }),
  left: (username: string) => ({ type: 'krmx/left', payload: { username } })
}

/** A ready instance with alice and bob linked, each having read every frame so far, and a recorder started after. */
export async function linkedPair (t: Test, options: BuildOptions = {}) {
  const app = await build(t, options)
  const alice = await inject(app)
  await alice.linked('alice', 3)
  const bob = await inject(app)
  await bob.linked('bob', 5)
  await alice.take(2)
  return { app, alice, bob, events: record(app) }
}

/** How many timers are active in this process. */
export function timerCount (): number {
  return process.getActiveResourcesInfo().filter(resource => resource === 'Timeout').length
}

/** A client that completes the WebSocket upgrade by hand, then never answers anything. */
export async function unresponsive (port: number): Promise<Socket> {
  const socket = tcpConnect(port, '127.0.0.1')
  await once(socket, 'connect')
  socket.write([
    'GET / HTTP/1.1', `Host: 127.0.0.1:${port}`, 'Upgrade: websocket', 'Connection: Upgrade',
    'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==', 'Sec-WebSocket-Version: 13', '', ''
  ].join('\r\n'))
  const [response] = await once(socket, 'data') as [Buffer]
  if (!response.toString().startsWith('HTTP/1.1 101')) {
    throw new Error(response.toString())
  }
  return socket
}

/** A masked client text frame holding `text` (payloads under 64 KiB), as a client writes it on the wire. */
export function maskedTextFrame (text: string): Buffer {
  const payload = Buffer.from(text)
  const mask = Buffer.from([1, 2, 3, 4])
  const header = payload.length < 126
    ? Buffer.from([0x81, 0x80 | payload.length])
    : Buffer.from([0x81, 0x80 | 126, payload.length >> 8, payload.length & 0xff])
  return Buffer.concat([header, mask, payload.map((byte, index) => byte ^ mask[index % 4])])
}

/**
 * Records the process's unhandled rejections while the test runs: without a listener Node ends the
 * process on the first one, which is what a listener's rejected promise did before it was handled.
 */
export function unhandledRejections (t: Test): unknown[] {
  const seen: unknown[] = []
  const listener = (reason: unknown): void => { seen.push(reason) }
  process.on('unhandledRejection', listener)
  t.teardown(() => { process.off('unhandledRejection', listener) })
  return seen
}

/** Resolves after the current macrotask, so that rejections nobody handled are reported before it. */
export function nextMacrotask (): Promise<void> {
  return new Promise(resolve => setImmediate(resolve))
}

/** Waits until `check()` holds, looking after each macrotask; after `timeoutMilliseconds` it fails with `describe()`. */
export async function eventually (check: () => boolean, describe: () => string, timeoutMilliseconds = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMilliseconds
  while (!check()) {
    if (Date.now() > deadline) {
      throw new Error(`still not so after ${timeoutMilliseconds} ms: ${describe()}`)
    }
    await nextMacrotask()
  }
}

/** Tries to open a WebSocket; resolves with the HTTP status and body of a refused upgrade, or 101. */
export async function upgrade (url: string, options: WebSocket.ClientOptions = {}): Promise<{ status: number, body?: unknown, ws?: WebSocket }> {
  const ws = new WebSocket(url, options)
  return await new Promise((resolve, reject) => {
    ws.once('open', () => resolve({ status: 101, ws }))
    ws.once('error', reject)
    ws.once('unexpected-response', (_request, response) => {
      const chunks: Buffer[] = []
      response.on('data', (chunk: Buffer) => chunks.push(chunk))
      response.on('end', () => resolve({ status: response.statusCode ?? 0, body: JSON.parse(Buffer.concat(chunks).toString()) }))
    })
  })
}

/**
 * The link server's metrics as `GET /metrics` serves them: every sample by name and labels, as
 * `name{label="value"}`, but the buckets and sums of the histograms, which hold timings.
 */
export async function scrape (app: FastifyInstance, path = '/metrics'): Promise<Record<string, number>> {
  const response = await app.inject(path)
  if (response.statusCode !== 200 || response.headers['content-type'] !== 'text/plain; version=0.0.4; charset=utf-8') {
    throw new Error(`GET ${path} answered ${response.statusCode} ${String(response.headers['content-type'])}: ${response.body}`)
  }
  const samples: Record<string, number> = {}
  for (const line of response.body.split('\n')) {
    if (line.startsWith('link_server_') && !/_bucket\{|_sum( |\{)/.test(line)) {
      const space = line.lastIndexOf(' ')
      samples[line.slice(0, space)] = Number(line.slice(space + 1))
    }
  }
  return samples
}

/** Only the samples of `scrape` that are not 0: what happened. */
export async function counted (app: FastifyInstance, path?: string): Promise<Record<string, number>> {
  return Object.fromEntries(Object.entries(await scrape(app, path)).filter(([, value]) => value !== 0))
}
