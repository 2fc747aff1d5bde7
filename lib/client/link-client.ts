import type { IncomingMessage, LinkMessage, LinkMessageError, LinkSchemas, LinkUser, OutgoingMessage } from '../../types/index.js'
import { backoffDelay, type ReconnectOptions, type ResolvedReconnect, resolveReconnect } from './backoff.js'
import type { MessageValidator } from './validate.js'
import { ClientState, type LinkClientSnapshot, type LinkClientStatus } from './state.js'

export type { LinkClientSnapshot, LinkClientStatus }

/** What the client needs of a WebSocket: the browser's, or `ws`'s in Node (which has none before Node 22). */
export interface SocketLike {
  readonly readyState: number
  send: (data: string) => void
  close: (code?: number, reason?: string) => void
  onopen: ((event: unknown) => void) | null
  onmessage: ((event: { data: unknown }) => void) | null
  onclose: ((event: { code: number, reason: string }) => void) | null
  onerror: ((event: unknown) => void) | null
}
export type SocketConstructor = new (url: string) => SocketLike

export interface LinkClientOptions {
  /** The WebSocket class; by default the global one (browsers, Node 22+). Give `ws`'s in Node 20. */
  WebSocket?: SocketConstructor
  /** How to come back after a dropped connection; `false`: never. */
  reconnect?: ReconnectOptions | false
  /**
   * How many times in a row a reconnection refused with `already linked` is tried again (the old connection may be a
   * half-open one the server has not noticed yet, or be on an instance that died). Default 10.
   */
  alreadyLinkedRetries?: number
  /** The Krmx version sent in the link request. Default `0.6.0`. */
  version?: string
  /** The random numbers of the jitter, `Math.random` by default (a test gives its own). */
  random?: () => number
  /**
   * Checks each application message the server sends (see `validateMessages`): one with errors is not handed to the
   * `message` listeners, but to the `invalidMessage` ones, with its errors.
   */
  validate?: MessageValidator
  /**
   * How often, while linked to a server that speaks the session extension, the client checks that the connection
   * still carries: when nothing arrived for this long it sends `krmx/ping`, and when nothing arrived for as long
   * again, it takes the connection as dead and reconnects (a half-open TCP connection is found in 2 to 3 intervals).
   * Default 5,000; `false`: never.
   */
  heartbeatMilliseconds?: number | false
}

export interface LinkOptions {
  /** Sent with each link request: a string, or a function called before every link (a reconnect gets a fresh token). */
  auth?: string | (() => string | Promise<string>)
}

/** A link refused by the server, with its reason. */
export class LinkRefusedError extends Error {
  readonly code = 'FST_LINK_CLIENT_REFUSED'
  readonly reason: string
  constructor (reason: string) {
    super(`the server refused the link: ${reason}`)
    this.reason = reason
  }
}

type Events<S extends LinkSchemas> = {
  message: (message: OutgoingMessage<S>) => void
  join: (username: string) => void
  link: (username: string) => void
  unlink: (username: string) => void
  leave: (username: string) => void
  status: (status: LinkClientStatus) => void
  invalidMessage: (message: LinkMessage, errors: readonly LinkMessageError[]) => void
  /** After a reconnection: how many messages the server could no longer replay (its bounds dropped them); resync. */
  lost: (count: number) => void
}

/** The close code of a connection taken over by a newer one of the same user (the server's `closeCodeTakenOver`). */
const takenOver = 4001
const alreadyLinked = /^user .* is already linked to a connection$/

/**
 * A client of the link server, typed by its options (`createLinkClient<typeof options>(url)`): what it sends is one
 * of `messages`, what it hears one of `serverMessages`.
 */
export class LinkClient<S extends LinkSchemas = LinkSchemas> {
  readonly #urls: readonly string[]
  /** How many connections were opened: the next one goes to the next URL of the list. */
  #opened = 0
  readonly #Socket: SocketConstructor
  readonly #reconnect: ResolvedReconnect | undefined
  readonly #options: { alreadyLinkedRetries: number, version: string, random: () => number, validate: MessageValidator | undefined, heartbeat: number | false }
  #socket: SocketLike | undefined
  /**
   * The session extension, once a server accepted it: the user's join order, and with replay on the number of the
   * last message handed to the app (`undefined`: messages are not numbered).
   */
  #session: { user: number, last: number | undefined } | undefined
  /** The heartbeat's timer, and whether a frame arrived since its last tick, and a ping is on its way. */
  #heartbeat: ReturnType<typeof setInterval> | undefined
  #heard = false
  #pinged = false
  readonly #state = new ClientState()
  #auth: LinkOptions['auth']
  /** Tries of the current reconnection (0 once linked), and of `already linked` refusals in a row. */
  #attempt = 0
  #alreadyLinked = 0
  #timer: ReturnType<typeof setTimeout> | undefined
  #linking: { resolve: (users: LinkUser[]) => void, reject: (err: Error) => void } | undefined
  /** Whether the user was linked once: a drop then reconnects. */
  #wasLinked = false

  constructor (url: string | readonly string[], options: LinkClientOptions = {}) {
    const Socket = options.WebSocket ?? (globalThis as { WebSocket?: SocketConstructor }).WebSocket
    if (Socket === undefined) {
      throw new TypeError('no WebSocket: give one with createLinkClient(url, { WebSocket }) (in Node 20, the one of the ws package)')
    }
    this.#urls = typeof url === 'string' ? [url] : url
    if (this.#urls.length === 0) {
      throw new TypeError('createLinkClient needs a URL, or a list of at least one')
    }
    this.#Socket = Socket
    this.#reconnect = resolveReconnect(options.reconnect)
    this.#options = {
      alreadyLinkedRetries: options.alreadyLinkedRetries ?? 10,
      version: options.version ?? '0.6.0',
      random: options.random ?? Math.random,
      validate: options.validate,
      heartbeat: options.heartbeatMilliseconds ?? 5_000
    }
  }

  /** Connects and links as `username`; resolves with the users once linked, rejects with the server's reason (`LinkRefusedError`). */
  async link (username: string, options: LinkOptions = {}): Promise<LinkUser[]> {
    if (this.#state.snapshot.status !== 'idle') {
      throw new Error(`link() was called already (status ${this.#state.snapshot.status}): make a client for each link`)
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
    if (this.#state.snapshot.status !== 'linked') {
      return false
    }
    (this.#socket as SocketLike).send(JSON.stringify(message))
    return true
  }

  /** The user leaves the server, and the connection closes: nothing reconnects. */
  leave (): void {
    if (this.#state.snapshot.status === 'linked') {
      (this.#socket as SocketLike).send('{"type":"krmx/leave"}')
    }
    this.#end('left')
  }

  /** Closes the connection without leaving (the user stays, unlinked, for another connection): nothing reconnects. */
  close (): void {
    this.#end('closed')
  }

  on<E extends keyof Events<S>> (event: E, listener: Events<S>[E]): () => void {
    return this.#state.on(event, listener)
  }

  /** The store of a UI: the snapshot, the same object until something in it changed. */
  getSnapshot (): LinkClientSnapshot {
    return this.#state.snapshot
  }

  /** Calls `listener` after each change of the snapshot; answers the function that unsubscribes it. */
  subscribe (listener: () => void): () => void {
    return this.#state.subscribe(listener)
  }

  #open (): void {
    this.#state.set({ status: this.#wasLinked ? 'reconnecting' : 'connecting' })
    const socket = new this.#Socket(this.#urls[this.#opened++ % this.#urls.length] as string)
    this.#socket = socket
    socket.onopen = () => { this.#requestLink(socket).catch((err: unknown) => this.#refused(err instanceof Error ? err.message : String(err), true)) }
    socket.onmessage = event => this.#frame(String(event.data))
    socket.onclose = event => this.#closed(socket, event.code)
    socket.onerror = () => {} // a close follows
  }

  async #requestLink (socket: SocketLike): Promise<void> {
    const auth = typeof this.#auth === 'function' ? await this.#auth() : this.#auth
    if (socket !== this.#socket) {
      return // closed meanwhile
    }
    if (!this.#wasLinked) {
      this.#state.set({ status: 'linking' })
    }
    const session = this.#session === undefined ? {} : { user: this.#session.user, last: this.#session.last }
    socket.send(JSON.stringify({ type: 'krmx/link', payload: { username: this.#state.snapshot.username, version: this.#options.version, auth, session } }))
  }

  #frame (data: string): void {
    this.#heard = true
    let frame: { type?: unknown, seq?: unknown, payload?: { username?: unknown, reason?: unknown, session?: { user?: unknown, last?: unknown } } }
    try {
      frame = JSON.parse(data)
    } catch {
      return // not a frame of the protocol: what the server sends is input too
    }
    if (typeof frame !== 'object' || frame === null || typeof frame.type !== 'string') {
      return
    }
    const username = frame.payload?.username as string
    if (frame.type.startsWith('krmx/') && frame.type !== 'krmx/accepted' && frame.type !== 'krmx/rejected' && typeof username !== 'string') {
      return // a user frame without a username, or krmx/pong (that something arrived was all it had to say)
    }
    const users = this.#state.snapshot.users
    switch (frame.type) {
      case 'krmx/accepted':
        this.#accepted(frame.payload?.session)
        return
      case 'krmx/rejected':
        this.#refused(String(frame.payload?.reason), false)
        return
      case 'krmx/joined':
        this.#state.set({ users: [...users, { username, isLinked: false }] })
        this.#state.emit('join', username)
        return
      case 'krmx/linked':
        this.#state.set({ users: users.map(user => user.username === username ? { username, isLinked: true } : user) })
        if (username === this.#state.snapshot.username && this.#state.snapshot.status !== 'linked') {
          this.#linked()
        }
        this.#state.emit('link', username)
        return
      case 'krmx/unlinked':
        this.#state.set({ users: users.map(user => user.username === username ? { username, isLinked: false } : user) })
        this.#state.emit('unlink', username)
        return
      case 'krmx/left':
        this.#state.set({ users: users.filter(user => user.username !== username) })
        this.#state.emit('leave', username)
        if (username === this.#state.snapshot.username) {
          this.#end('kicked') // the server made the user leave: coming back would not be wanted
        }
        return
      default: {
        const last = this.#session?.last
        if (last !== undefined && typeof frame.seq === 'number') {
          if (frame.seq <= last) {
            return // had already
          }
          if (frame.seq > last + 1) {
            this.#state.emit('lost', frame.seq - last - 1) // numbers are given without gaps: these never reached the client
          }
          (this.#session as { last: number }).last = frame.seq
          delete frame.seq
        }
        const errors = this.#options.validate?.(frame as LinkMessage)
        if (errors === undefined) {
          this.#state.emit('message', frame)
        } else {
          this.#state.emit('invalidMessage', frame, errors)
        }
      }
    }
  }

  /**
   * The link was accepted. A server that speaks the session extension names the user (its join order) and, with
   * replay on, the number after which this connection's messages start: for the same user, a gap after the last
   * message the client had is what the server's bounds dropped.
   */
  #accepted (session: { user?: unknown, last?: unknown } | undefined): void {
    this.#state.set({ users: [], reason: undefined })
    if (typeof session?.user !== 'number') {
      this.#session = undefined
      return
    }
    const before = this.#session
    const last = typeof session.last === 'number' ? session.last : undefined
    this.#session = { user: session.user, last }
    if (before?.user === session.user && before.last !== undefined && last !== undefined && last > before.last) {
      this.#state.emit('lost', last - before.last)
    }
    if (this.#options.heartbeat !== false) {
      this.#stopHeartbeat() // (a server that accepts twice)
      const socket = this.#socket as SocketLike
      this.#heartbeat = setInterval(() => this.#beat(socket), this.#options.heartbeat)
    }
  }

  /** A heartbeat tick: quiet for an interval, the client pings; quiet for another, the connection is dead. */
  #beat (socket: SocketLike): void {
    if (this.#heard) {
      this.#heard = false
      this.#pinged = false
    } else if (!this.#pinged) {
      this.#pinged = true
      socket.send('{"type":"krmx/ping"}')
    } else {
      this.#closed(socket, 1006) // as a socket that closed without a close frame: reconnect
      socket.close(1000)
    }
  }

  #linked (): void {
    this.#wasLinked = true
    this.#attempt = 0
    this.#alreadyLinked = 0
    this.#state.set({ status: 'linked' })
    this.#linking?.resolve([...this.#state.snapshot.users])
    this.#linking = undefined
  }

  /** A link refused: `already linked` while reconnecting is tried again a few times; anything else ends the client. */
  #refused (reason: string, local: boolean): void {
    if (!local && alreadyLinked.test(reason) && this.#wasLinked && this.#alreadyLinked < this.#options.alreadyLinkedRetries) {
      this.#alreadyLinked++
      this.#retryLater()
      return
    }
    this.#end(reason)
  }

  #closed (socket: SocketLike, code: number): void {
    if (socket !== this.#socket) {
      return
    }
    this.#socket = undefined // (a socket the client closed itself is no longer its socket: it was handled)
    this.#stopHeartbeat()
    if (code === takenOver) {
      this.#end('taken over by another connection')
    } else if (this.#reconnect !== undefined && this.#wasLinked && this.#attempt < this.#reconnect.maxAttempts) {
      this.#state.set({ status: 'reconnecting' })
      this.#schedule()
    } else {
      this.#end('the connection closed')
    }
  }

  /** Closes the socket, to link again after a backoff delay. */
  #retryLater (): void {
    const socket = this.#socket as SocketLike
    this.#socket = undefined
    this.#stopHeartbeat()
    socket.close(1000)
    this.#schedule()
  }

  #stopHeartbeat (): void {
    clearInterval(this.#heartbeat)
    this.#heartbeat = undefined
    this.#heard = false
    this.#pinged = false
  }

  #schedule (): void {
    const delay = backoffDelay(this.#reconnect as ResolvedReconnect, this.#attempt++, this.#options.random)
    this.#timer = setTimeout(() => this.#open(), delay)
  }

  /** The client closes for good: a `link()` still waiting is rejected with `reason`. */
  #end (reason: string): void {
    this.#linking?.reject(new LinkRefusedError(reason))
    this.#linking = undefined
    clearTimeout(this.#timer)
    this.#stopHeartbeat()
    const socket = this.#socket
    this.#socket = undefined
    socket?.close(1000)
    if (this.#state.snapshot.status !== 'closed') {
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
