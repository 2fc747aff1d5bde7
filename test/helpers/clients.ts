import { once } from 'node:events'
import type { Socket } from 'node:net'
import type { FastifyInstance } from 'fastify'
import WebSocket from 'ws'
import { clientFrame, RawClient, upgradedSocket } from '../../support/raw-client.js'
import { injectSocket, LinkTestClient, type TestFrame } from '../../testing.js'
import { version } from './frames.js'
import { eventually } from './waits.js'

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

/**
 * Cuts the injected connections of `app`: injectWS streams never report the end of a closing handshake, so the
 * server would wait out its grace period for each of them when it closes.
 */
export function cutInjected (app: FastifyInstance): void {
  for (const client of injected.get(app) ?? []) {
    client.ws.terminate()
  }
}

/** The `ws://` URL of a listening instance. */
export function urlOf (app: FastifyInstance, path = '/'): string {
  const address = app.server.address() as { port: number }
  return `ws://127.0.0.1:${address.port}${path}`
}

/** Opens a real loopback connection to a listening instance. */
export async function connect (app: FastifyInstance, path = '/'): Promise<Client> {
  const ws = new WebSocket(urlOf(app, path))
  await once(ws, 'open')
  return new Client(ws)
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

/** A client that completes the WebSocket upgrade by hand, then never reads nor answers anything. */
export async function unresponsive (port: number): Promise<Socket> {
  return (await upgradedSocket(port)).socket
}

/** The frame a client sends to link as `username`. */
export function linkFrame (username: string): Buffer {
  return clientFrame(JSON.stringify({ type: 'krmx/link', payload: { username, version } }))
}

/**
 * A raw client (`support/raw-client.ts`) that records what arrives, and answers the server's pings only when told
 * to: a phone whose network went away keeps its TCP connection open, reads nothing, answers nothing.
 */
export class RecordingClient {
  readonly raw: RawClient
  /** The text frames that arrived, parsed, and the payloads of the pings, in order. */
  readonly frames: unknown[] = []
  readonly pings: string[] = []
  /** Both, in the order they arrived: a frame's type, or `ping <payload>`. */
  readonly arrivals: string[] = []
  answering = true

  private constructor (raw: RawClient) {
    this.raw = raw
    raw.onFrame = payload => {
      const frame = JSON.parse(payload.toString()) as { type: string, payload?: unknown }
      this.frames.push(frame)
      this.arrivals.push(frame.type.startsWith('krmx/') ? frame.type : String(frame.payload))
    }
    raw.onPing = payload => {
      this.pings.push(payload.toString())
      this.arrivals.push(`ping ${payload.toString()}`)
      return this.answering
    }
  }

  static async open (port: number): Promise<RecordingClient> {
    return new RecordingClient(await RawClient.open(port))
  }

  get socket (): Socket {
    return this.raw.socket
  }

  link (username: string): void {
    this.raw.send(linkFrame(username))
  }

  /** Waits until `count` text frames arrived in all. */
  async received (count: number): Promise<unknown[]> {
    await eventually(() => this.frames.length >= count, () => JSON.stringify(this.frames))
    return this.frames
  }

  /** Cuts the TCP connection without a close frame. */
  cut (): void {
    this.raw.close()
  }

  /** Answers with a pong of its own making, as a client that answers pings it was never sent, or answers them wrongly. */
  pong (text: string): void {
    this.raw.pong(Buffer.from(text))
  }
}
