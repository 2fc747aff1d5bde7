/**
 * `fastify-link-server/testing`: what an application's own tests need to talk to its link server over
 * Fastify's `injectWS`, without a port: link a user, await frames, check the user list, close. A client is
 * typed by the application's schemas, as `linkServer.typed()` is: `linkUser<typeof options>(app, 'alice')`.
 */
import type { FastifyInstance } from 'fastify'
import type { WebSocket } from 'ws'
import type { IncomingMessage, LinkMessage, LinkSchemas, LinkServerSchemas, LinkUser, MessageSchemas, MessageUnion } from './types/index.js'
import { createLinkClient, type LinkClient, type LinkClientOptions, type LinkOptions, type SocketLike } from './lib/client/link-client.js'

/** A frame of the Krmx protocol that a client receives. */
export type ProtocolFrame =
  | { type: 'krmx/accepted', payload?: { session: { user: number, last?: number } } }
  | { type: 'krmx/pong', payload?: undefined }
  | { type: 'krmx/rejected', payload: { reason: string } }
  | { type: 'krmx/joined', payload: { username: string } }
  | { type: 'krmx/linked', payload: { username: string } }
  | { type: 'krmx/unlinked', payload: { username: string } }
  | { type: 'krmx/left', payload: { username: string } }

/** An application message the server sends: one of `serverMessages`, typed by its schema; any `{ type, payload? }` without them. */
export type ServerMessage<S extends LinkSchemas = LinkServerSchemas> = S extends { serverMessages: infer M extends MessageSchemas }
  ? MessageUnion<M>
  : LinkMessage

/** A frame as a client receives it: a protocol frame, or an application message. */
export type TestFrame<S extends LinkSchemas = LinkServerSchemas> = ProtocolFrame | ServerMessage<S>

/** The types a client can receive: the protocol's, and those of `serverMessages` (any string without them). */
export type TestFrameType<S extends LinkSchemas = LinkServerSchemas> = ProtocolFrame['type'] | ServerMessage<S>['type']

/** The frame of type `K`. */
export type TestFrameOf<S extends LinkSchemas, K extends string> = K extends ProtocolFrame['type']
  ? Extract<ProtocolFrame, { type: K }>
  : S extends { serverMessages: infer M extends MessageSchemas } ? Extract<MessageUnion<M>, { type: K }> : LinkMessage

/** What a client sends: an application message (typed by `messages`), or a protocol request. */
export type ClientFrame<S extends LinkSchemas = LinkServerSchemas> =
  | IncomingMessage<S>
  | { type: 'krmx/link', payload: { username: string, version: string, auth?: string, session?: { user?: number, last?: number } } }
  | { type: 'krmx/ping' }
  | { type: 'krmx/unlink' }
  | { type: 'krmx/leave' }

/** How a test client links. */
export interface TestLinkOptions {
  /** The `auth` of the link request, handed to the `authenticate` listeners. */
  auth?: string
  /** The Krmx version the client claims. Default `testClientVersion`. */
  version?: string
}

/** The Krmx version test clients send, one the default `acceptedVersions` accept. */
export const testClientVersion = '0.6.10'
/** How long a wait of a test client lasts before it fails, naming what did arrive. */
export const defaultTestTimeoutMilliseconds = 5_000

/** A link request that the server answered with `krmx/rejected`; `reason` is its reason. */
export class LinkRejectedError extends Error {
  readonly reason: string
  constructor (username: string, reason: string) {
    super(`the link of ${username} was rejected: ${reason}`)
    this.name = 'LinkRejectedError'
    this.reason = reason
  }
}

/** The frames of the user list that follow `krmx/accepted`. */
const userListTypes = new Set<string>(['krmx/joined', 'krmx/linked'])

/**
 * One WebSocket client of a link server, recording every frame it receives in order. Waits (`link`, `next`,
 * `take`) read the frames in order, each once; `frames()` keeps them all. `S` types the frames by the
 * application's schemas (`serverMessages` for what arrives, `messages` for what `send` takes).
 */
export class LinkTestClient<S extends LinkSchemas = LinkServerSchemas> {
  readonly ws: WebSocket
  readonly #received: Array<TestFrame<S>> = []
  #read = 0
  #pongs = 0
  /** Wakes the wait in progress: a frame or a pong arrived, or the socket closed. */
  #wake: (() => void) | undefined
  /** How the socket closed, once it did. */
  #close: { code: number, reason: string } | undefined
  readonly #closed: Promise<{ code: number, reason: string }>

  constructor (ws: WebSocket) {
    this.ws = ws
    ws.on('message', data => {
      this.#received.push(JSON.parse(data.toString()) as TestFrame<S>)
      this.#wake?.()
    })
    ws.on('pong', () => {
      this.#pongs++
      this.#wake?.()
    })
    this.#closed = new Promise(resolve => {
      ws.once('close', (code, reason) => {
        this.#close = { code, reason: reason.toString() }
        resolve(this.#close)
        this.#wake?.()
      })
    })
  }

  /** Opens a connection to the link server of `app` (ready, not necessarily listening) with `injectWS`. */
  static async open<S extends LinkSchemas = LinkServerSchemas> (app: FastifyInstance, path = '/'): Promise<LinkTestClient<S>> {
    return new LinkTestClient<S>(await injectSocket(app, path))
  }

  /** Sends an application message (typed by `messages`) or a protocol frame, as JSON. */
  send (frame: ClientFrame<S>): void {
    this.sendRaw(frame)
  }

  /** Sends anything as JSON, unchecked by the types: a frame the server should refuse, say. */
  sendRaw (frame: unknown): void {
    this.ws.send(JSON.stringify(frame))
  }

  /** Sends a link request, and waits for nothing. */
  requestLink (username: string, options: TestLinkOptions = {}): void {
    const { auth, version = testClientVersion } = options
    this.send({ type: 'krmx/link', payload: auth === undefined ? { username, version } : { username, version, auth } })
  }

  /**
   * Links as `username` and waits for the answer: resolves with `krmx/accepted` and the user list after it, which
   * it reads; rejects with a `LinkRejectedError`. What else arrived with the link (a replay, what a `link`
   * listener sent) stays unread, for `next`, `take` and `unread`.
   */
  async link (username: string, options: TestLinkOptions = {}, timeoutMilliseconds = defaultTestTimeoutMilliseconds): Promise<Array<TestFrame<S>>> {
    this.requestLink(username, options)
    const answer = await this.#until(frame => frame.type === 'krmx/accepted' || frame.type === 'krmx/rejected', timeoutMilliseconds,
      'krmx/accepted or krmx/rejected')
    if (answer.type === 'krmx/rejected') {
      throw new LinkRejectedError(username, (answer.payload as { reason: string }).reason)
    }
    await this.#pong(timeoutMilliseconds, 'the user list')
    const list: Array<TestFrame<S>> = []
    while (this.#read < this.#received.length && userListTypes.has(this.#received[this.#read].type)) {
      list.push(this.#received[this.#read++])
    }
    return [answer, ...list]
  }

  /** Waits for the next frame of `type`, skipping (and reading) the frames before it. */
  async next<K extends TestFrameType<S>> (type: K, timeoutMilliseconds = defaultTestTimeoutMilliseconds): Promise<TestFrameOf<S, K>> {
    return await this.#until(frame => frame.type === type, timeoutMilliseconds, type) as TestFrameOf<S, K>
  }

  /** Waits until `count` frames that were not read yet arrived, and reads them. */
  async take (count: number, timeoutMilliseconds = defaultTestTimeoutMilliseconds): Promise<Array<TestFrame<S>>> {
    await this.#arrived(this.#read + count, Date.now() + timeoutMilliseconds, `${timeoutMilliseconds} ms for ${count} frames`)
    const frames = this.#received.slice(this.#read, this.#read + count)
    this.#read += count
    return frames
  }

  /** Reads the frames that arrived and were not read yet, without waiting. */
  unread (): Array<TestFrame<S>> {
    const frames = this.#received.slice(this.#read)
    this.#read = this.#received.length
    return frames
  }

  /** Every frame that arrived, read or not, in order. */
  frames (): Array<TestFrame<S>> {
    return [...this.#received]
  }

  /** The user list as this client was told it (`krmx/joined`, `linked`, `unlinked`, `left`), like `getUsers()`. */
  users (): LinkUser[] {
    const users = new Map<string, boolean>()
    for (const { type, payload } of this.#received as Array<{ type: string, payload?: unknown }>) {
      const username = (payload as { username?: string } | undefined)?.username as string
      if (type === 'krmx/joined') {
        users.set(username, false)
      } else if (type === 'krmx/linked' || type === 'krmx/unlinked') {
        users.set(username, type === 'krmx/linked')
      } else if (type === 'krmx/left') {
        users.delete(username)
      }
    }
    return [...users].map(([username, isLinked]) => ({ username, isLinked }))
  }

  /** Waits until the server answered a ping, so that every frame it sent before arrived; reads and returns them. */
  async settle (timeoutMilliseconds = defaultTestTimeoutMilliseconds): Promise<Array<TestFrame<S>>> {
    await this.#pong(timeoutMilliseconds, 'the answer to a ping')
    return this.unread()
  }

  /** Waits for the socket to be closed, and answers its close code and reason; at once if it closed already. */
  async closed (): Promise<{ code: number, reason: string }> {
    return await this.#closed
  }

  /** Ends the connection at once, as a client that goes away does; the server unlinks its user. */
  close (): void {
    this.ws.terminate()
  }

  /** Waits until the server answered a ping: every frame it sent before then has arrived. */
  async #pong (timeoutMilliseconds: number, what: string): Promise<void> {
    const answered = this.#pongs + 1
    if (this.#close === undefined) {
      this.ws.ping()
    }
    await this.#wait(() => this.#pongs >= answered, Date.now() + timeoutMilliseconds, `${timeoutMilliseconds} ms for ${what}`)
  }

  /** Waits for the first unread frame that `matches`, reading every frame up to it. */
  async #until (matches: (frame: TestFrame<S>) => boolean, timeoutMilliseconds: number, what: string): Promise<TestFrame<S>> {
    const deadline = Date.now() + timeoutMilliseconds
    for (;;) {
      while (this.#read < this.#received.length) {
        const frame = this.#received[this.#read++]
        if (matches(frame)) {
          return frame
        }
      }
      await this.#arrived(this.#read + 1, deadline, `${timeoutMilliseconds} ms for ${what}`)
    }
  }

  /** Waits until `count` frames arrived in all; fails at `deadline`, naming the unread ones. */
  async #arrived (count: number, deadline: number, what: string): Promise<void> {
    await this.#wait(() => this.#received.length >= count, deadline, what)
  }

  /**
   * Waits until `done`; fails at `deadline`, or at once when the socket closed (nothing more can arrive), with
   * what did arrive and was not read.
   */
  async #wait (done: () => boolean, deadline: number, what: string): Promise<void> {
    while (!done()) {
      if (this.#close !== undefined) {
        const { code, reason } = this.#close
        throw new Error(`waited ${what}, but the socket closed (${code}${reason === '' ? '' : ` ${reason}`}); unread frames: ${this.#unreadText()}`)
      }
      const woken = await new Promise<boolean>(resolve => {
        const timer = setTimeout(resolve, Math.max(0, deadline - Date.now()), false)
        this.#wake = () => { clearTimeout(timer); resolve(true) }
      })
      this.#wake = undefined
      if (!woken) {
        throw new Error(`waited ${what}; unread frames: ${this.#unreadText()}`)
      }
    }
  }

  #unreadText (): string {
    return JSON.stringify(this.#received.slice(this.#read))
  }
}

/** A WebSocket to `path` of `app` by `injectWS` that answers pings, as every real client does. */
export async function injectSocket (app: FastifyInstance, path = '/'): Promise<WebSocket> {
  const ws = await app.injectWS(path)
  // A socket of injectWS has no address, so ws leaves its automatic pong off.
  ws.on('ping', (data: Buffer) => ws.pong(data))
  return ws
}

/**
 * Opens a connection to the link server of `app` and links it as `username`; rejects with a `LinkRejectedError`.
 * `S` types the client by the application's schemas: `linkUser<typeof options>(app, 'alice')`.
 */
export async function linkUser<S extends LinkSchemas = LinkServerSchemas> (
  app: FastifyInstance,
  username: string,
  options: TestLinkOptions & { path?: string } = {}
): Promise<LinkTestClient<S>> {
  const { path = '/', ...link } = options
  const client = await LinkTestClient.open<S>(app, path)
  try {
    await client.link(username, link)
  } catch (err) {
    client.close()
    throw err
  }
  return client
}

/**
 * A WebSocket class for `fastify-link-server/client` whose connections are made with `injectWS` on `app`: the client's
 * URL is a path of it. Closing ends the connection at once: an injected socket never completes a closing handshake.
 */
export function injectedWebSocket (app: FastifyInstance): new (path: string) => SocketLike {
  return class InjectedWebSocket implements SocketLike {
    readyState = 0
    onopen: SocketLike['onopen'] = null
    onmessage: SocketLike['onmessage'] = null
    onclose: SocketLike['onclose'] = null
    onerror: SocketLike['onerror'] = null
    #ws: WebSocket | undefined

    constructor (path: string) {
      injectSocket(app, path).then(ws => {
        if (this.readyState === 3) {
          ws.terminate() // closed while it opened
          return
        }
        this.#ws = ws
        ws.on('message', data => this.onmessage?.({ data: data.toString() }))
        ws.once('close', (code, reason) => {
          this.readyState = 3
          this.onclose?.({ code, reason: reason.toString() })
        })
        this.readyState = 1
        this.onopen?.({})
      }, (err: unknown) => {
        this.readyState = 3
        this.onerror?.(err)
        this.onclose?.({ code: 1006, reason: '' })
      })
    }

    send (data: string): void {
      this.#ws?.send(data)
    }

    close (): void {
      this.readyState = 3
      this.#ws?.terminate()
    }
  }
}

/**
 * The client of `fastify-link-server/client` on `app`, over `injectWS`, linked as `username` (at `path`); rejects with
 * the client's `LinkRefusedError`. Typed by the application's schemas: `linkClient<typeof options>(app, 'alice')`.
 */
export async function linkClient<S extends LinkSchemas = LinkServerSchemas> (
  app: FastifyInstance,
  username: string,
  options: LinkOptions & { path?: string, client?: Omit<LinkClientOptions, 'WebSocket'> } = {}
): Promise<LinkClient<S>> {
  const { path = '/', client: clientOptions, ...link } = options
  const client = createLinkClient<S>(path, { ...clientOptions, WebSocket: injectedWebSocket(app) })
  await client.link(username, link)
  return client
}
