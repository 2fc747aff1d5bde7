import type { IncomingMessage, LinkMessage, LinkSchemas, LinkUser, OutgoingMessage } from '../../types/index.js'
import { Retries } from './backoff.js'
import { Heartbeat } from './heartbeat.js'
import { type ClientEvents, type LinkClientOptions, type LinkOptions, LinkRefusedError, type LinkSession, type SocketConstructor, type SocketLike } from './options.js'
import { SessionCursor } from './session.js'
import { ClientState, type LinkClientSnapshot, type LinkClientStatus } from './state.js'
import type { MessageValidator } from './validate.js'

export type { LinkClientOptions, LinkClientSnapshot, LinkClientStatus, LinkOptions, LinkSession, SocketConstructor, SocketLike }
export { LinkRefusedError }

/** The message of type `K` the server sends: typed by its schema in `serverMessages`, else any message. */
type MessageOf<S extends LinkSchemas, K extends string> = [Extract<OutgoingMessage<S>, { type: K }>] extends [never]
  ? LinkMessage
  : Extract<OutgoingMessage<S>, { type: K }>

/** The frames of the user list, by type: the linked state each gives its user (`undefined`: it left), and its event. */
const userFrames: Partial<Record<string, [boolean | undefined, 'join' | 'link' | 'unlink' | 'leave']>> = {
  'krmx/joined': [false, 'join'],
  'krmx/linked': [true, 'link'],
  'krmx/unlinked': [false, 'unlink'],
  'krmx/left': [undefined, 'leave']
}

/** The close code of a connection taken over by a newer one of the same user (the server's `closeCodeTakenOver`). */
const takenOver = 4001
const alreadyLinked = /^user .* is already linked to a connection$/

/**
 * A client of the link server, typed by its options (`createLinkClient<typeof options>(url)`): what it sends is one
 * of `messages`, what it hears one of `serverMessages`.
 */
export class LinkClient<S extends LinkSchemas = LinkSchemas> {
  /** The URLs, the next one first: each connection goes to the first, which then goes last. */
  readonly #urls: string[]
  readonly #Socket: SocketConstructor
  readonly #options: { version: string, validate: MessageValidator | undefined }
  #socket: SocketLike | undefined
  /** The session extension: where the client is in its user's messages. */
  readonly #cursor: SessionCursor
  readonly #heartbeat: Heartbeat
  readonly #retries: Retries
  readonly #state = new ClientState()
  #auth: LinkOptions['auth']
  #linking: { resolve: (users: LinkUser[]) => void, reject: (err: Error) => void } | undefined
  /** Whether the user was linked once: a drop then reconnects. */
  #wasLinked = false

  constructor (url: string | readonly string[], options: LinkClientOptions = {}) {
    const Socket = options.WebSocket ?? (globalThis as { WebSocket?: SocketConstructor }).WebSocket
    if (Socket === undefined) {
      throw new TypeError('no WebSocket: give one, createLinkClient(url, { WebSocket }) (in Node 20, ws\'s)')
    }
    this.#urls = typeof url === 'string' ? [url] : [...url]
    if (this.#urls.length === 0) {
      throw new TypeError('createLinkClient needs a URL, or a list of at least one')
    }
    this.#Socket = Socket
    this.#options = { version: options.version ?? '0.6.0', validate: options.validate }
    this.#cursor = new SessionCursor(options.session)
    this.#heartbeat = new Heartbeat(options.heartbeatMilliseconds ?? 5_000)
    this.#retries = new Retries(options.reconnect, options.alreadyLinkedRetries ?? 15, options.random ?? Math.random)
  }

  /** Connects and links as `username`; resolves with the users once linked, rejects with the server's reason (`LinkRefusedError`). */
  async link (username: string, options: LinkOptions = {}): Promise<LinkUser[]> {
    if (this.#state.status !== 'idle') {
      throw new Error(`link() was called already (status ${this.#state.status}): make a client for each link`)
    }
    this.#auth = options.auth
    this.#state.set({ username })
    return await new Promise<LinkUser[]>((resolve, reject) => {
      this.#linking = { resolve, reject }
      this.#open()
    })
  }

  /** Sends an application message of the linked user; one sent while not linked is dropped (and `false` answered). */
  send (message: IncomingMessage<S>): boolean {
    if (this.#state.status !== 'linked') {
      return false
    }
    (this.#socket as SocketLike).send(JSON.stringify(message))
    return true
  }

  /** The user leaves the server, and the connection closes: nothing reconnects. */
  leave (): void {
    if (this.#state.status === 'linked') {
      (this.#socket as SocketLike).send('{"type":"krmx/leave"}')
    }
    this.#end('left')
  }

  /** Closes the connection without leaving (the user stays, unlinked, for another connection): nothing reconnects. */
  close (): void {
    this.#end('closed')
  }

  /** Where the client is in its user's messages, for a client that goes on after it (the `session` option); `undefined` before a link. */
  getSession (): LinkSession | undefined {
    return this.#cursor.session
  }

  on<E extends keyof ClientEvents<S>> (event: E, listener: ClientEvents<S>[E]): () => void {
    return this.#state.on(event, listener)
  }

  /**
   * Calls `handler` with the payload (and the message) of each application message of `type`, after the `message`
   * listeners; answers the function that removes it.
   */
  handle<K extends OutgoingMessage<S>['type']> (type: K, handler: (payload: MessageOf<S, K>['payload'], message: MessageOf<S, K>) => void): () => void {
    return this.#state.on(`:${type}`, handler) // (no event name has a colon)
  }

  /** The store of a UI: the snapshot, the same object until something in it changed (bound: pass it as it is). */
  readonly getSnapshot = (): LinkClientSnapshot => this.#state.snapshot

  /** Calls `listener` after each change of the snapshot; answers the function that unsubscribes it (bound). */
  readonly subscribe = (listener: () => void): (() => void) => this.#state.subscribe(listener)

  // Each state change is made before the listeners hear of it: one that closes the client re-entrantly (a `status`
  // listener that calls close(), say) finds nothing left to undo.
  #open (): void {
    const next = this.#urls.shift() as string
    this.#urls.push(next)
    const socket = new this.#Socket(next) as SocketLike
    this.#socket = socket
    socket.onopen = () => { this.#requestLink(socket).catch((err: unknown) => this.#refused(err instanceof Error ? err.message : String(err), true)) }
    socket.onmessage = event => { if (socket === this.#socket) this.#frame(String(event.data)) } // (not one of a socket it let go)
    socket.onclose = event => this.#closed(socket, event.code)
    socket.onerror = () => {} // a close follows
    this.#state.set({ status: this.#wasLinked ? 'reconnecting' : 'connecting' })
  }

  async #requestLink (socket: SocketLike): Promise<void> {
    if (!this.#wasLinked) {
      this.#state.set({ status: 'linking' })
    }
    const auth = typeof this.#auth === 'function' ? await this.#auth() : this.#auth
    if (socket !== this.#socket) {
      return // closed meanwhile
    }
    const payload = { username: this.#state.username, version: this.#options.version, auth, session: this.#cursor.request() }
    socket.send(JSON.stringify({ type: 'krmx/link', payload }))
  }

  #frame (data: string): void {
    this.#heartbeat.heard()
    let frame: { type?: unknown, seq?: unknown, payload?: { username?: unknown, reason?: unknown, session?: { user?: unknown, last?: unknown } } }
    try {
      frame = JSON.parse(data)
    } catch {
      return // not a frame of the protocol: what the server sends is input too
    }
    const { type, payload } = frame ?? {}
    if (typeof type !== 'string') {
      return // not an object with a string type (null, a number, a string, ...)
    }
    if (type === 'krmx/accepted') {
      this.#accepted(payload?.session)
    } else if (type === 'krmx/rejected') {
      this.#refused(String(payload?.reason), false)
    } else if (type.startsWith('krmx/')) {
      const change = userFrames[type] // krmx/pong, and any other, says only that something arrived
      const username = payload?.username
      if (change !== undefined && typeof username === 'string') {
        const [isLinked, event] = change
        const own = username === this.#state.username
        this.#state.user(username, isLinked)
        if (own && isLinked === true && this.#state.status !== 'linked') {
          this.#linked()
        }
        this.#state.emit(event, username)
        if (own && isLinked === undefined) {
          this.#end('kicked') // the server made the user leave: coming back would not be wanted
        }
      }
    } else {
      const lost = this.#cursor.next(frame.seq)
      if (lost === undefined) {
        return // had already
      }
      if (lost >= 0) {
        delete frame.seq // the server's number
      }
      if (lost > 0) {
        this.#state.emit('lost', lost) // numbers come without gaps: these never reached the client
      }
      const errors = this.#options.validate?.(frame as LinkMessage)
      if (errors === undefined) {
        this.#state.emit('message', frame)
        this.#state.emit(`:${type}`, payload, frame)
      } else {
        this.#state.emit('invalidMessage', frame, errors)
      }
    }
  }

  /**
   * The link was accepted. A server that speaks the session extension names the user (its join order) and, with
   * replay on, the number after which this connection's messages start: for the same user, a gap after the last
   * message the client had is what the server's bounds dropped. The heartbeat checks such a connection.
   */
  #accepted (session: { user?: unknown, last?: unknown } | undefined): void {
    this.#state.clearUsers()
    this.#state.set({ reason: undefined })
    const lost = this.#cursor.accepted(session)
    if (lost > 0) {
      this.#state.emit('lost', lost)
    }
    if (lost >= 0) {
      const socket = this.#socket as SocketLike
      this.#heartbeat.start(socket, () => {
        this.#closed(socket, 1006) // as a socket that closed without a close frame: reconnect
        socket.close(1000)
      })
    }
  }

  #linked (): void {
    this.#wasLinked = true
    this.#retries.reset()
    this.#linking?.resolve([...this.#state.snapshot.users])
    this.#linking = undefined
    this.#state.set({ status: 'linked' })
  }

  /** A link refused: `already linked` while reconnecting is tried again a few times; anything else ends the client. */
  #refused (reason: string, local: boolean): void {
    if (!local && alreadyLinked.test(reason) && this.#wasLinked && this.#retries.retriesAlreadyLinked()) {
      const socket = this.#socket as SocketLike // closed, to link again from a new one after a backoff delay
      this.#socket = undefined
      this.#heartbeat.stop()
      socket.close(1000)
      this.#retries.schedule(() => this.#open())
      return
    }
    this.#end(reason)
  }

  #closed (socket: SocketLike, code: number): void {
    if (socket !== this.#socket) {
      return
    }
    this.#socket = undefined // (a socket the client closed itself is no longer its socket: it was handled)
    this.#heartbeat.stop()
    if (code === takenOver) {
      this.#end('taken over by another connection')
    } else if (this.#wasLinked && this.#retries.mayReconnect) {
      this.#retries.schedule(() => this.#open())
      this.#state.set({ status: 'reconnecting' })
    } else {
      this.#end('the connection closed')
    }
  }

  /** The client closes for good: a `link()` still waiting is rejected with `reason`. */
  #end (reason: string): void {
    this.#linking?.reject(new LinkRefusedError(reason))
    this.#linking = undefined
    this.#retries.cancel()
    this.#heartbeat.stop()
    const socket = this.#socket
    this.#socket = undefined
    socket?.close(1000)
    if (this.#state.status !== 'closed') {
      this.#state.set({ status: 'closed', reason })
    }
  }
}

/**
 * A client of the link server at `url` (a room's URL with rooms on), typed by the server's options. Given a list of
 * URLs (the instances of a cluster), each new connection goes to the next one.
 */
export function createLinkClient<S extends LinkSchemas = LinkSchemas> (url: string | readonly string[], options?: LinkClientOptions): LinkClient<S> {
  return new LinkClient<S>(url, options)
}

export type { LinkMessage, LinkUser }
