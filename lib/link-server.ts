import { EventEmitter } from 'node:events'
import type { AddressInfo } from 'node:net'
import { performance } from 'node:perf_hooks'
import type { FastifyBaseLogger, FastifyReply, FastifyRequest, HookHandlerDoneFunction } from 'fastify'
import type { WebSocket } from 'ws'
import type {
  AsyncApiDocument,
  AuthenticateInfo,
  LinkMessage,
  LinkMessageError,
  LinkSchemas,
  LinkServer,
  LinkServerStats,
  LinkServerStatus,
  LinkUser,
  MessageHandler
} from '../types/index.js'
import { buildAsyncApi } from './asyncapi.js'
import { authenticate, type AuthenticateListener } from './authenticate.js'
import { closeSocket, Connection, type QueuedFrame, WriteCoalescer } from './connection.js'
import {
  FST_LINK_CLOSED,
  FST_LINK_INVALID_HANDLER,
  FST_LINK_INVALID_MESSAGE,
  FST_LINK_INVALID_PAYLOAD,
  FST_LINK_INVALID_USERNAME,
  FST_LINK_NOT_READY,
  FST_LINK_RESERVED_TYPE,
  FST_LINK_SERVER_FULL,
  FST_LINK_UNENCODABLE_MESSAGE,
  FST_LINK_UNKNOWN_MESSAGE_TYPE,
  FST_LINK_UNKNOWN_USER,
  FST_LINK_USER_EXISTS,
  FST_LINK_USER_NOT_LINKED
} from './errors.js'
import {
  acceptedFrame,
  type EncodedFrame,
  encodeText,
  type Frame,
  isFrame,
  isLinkPayload,
  isProtocolType,
  joinedFrame,
  kTooDeep,
  leaveType,
  leftFrame,
  linkedFrame,
  linkType,
  parseFrame,
  rejectedFrame,
  unlinkedFrame,
  unlinkType
} from './frames.js'
import { Heartbeat } from './heartbeat.js'
import { payloadErrors, tooDeepError, unregisteredTypeError } from './messages.js'
import type { ResolvedOptions } from './options.js'
import { LocalRegistry, type UserRegistry } from './registry.js'
import { isThenable } from './thenable.js'
import { VersionCheck } from './version.js'

/** The close code of every socket when the server closes: the endpoint is going away. */
export const closeCodeGoingAway = 1001
/** The close code of a connection that broke a rule: link timeout, link attempts, rate limit. */
export const closeCodePolicyViolation = 1008
/** The close code of a connection that sent a frame larger than `maxPayload`. */
export const closeCodeTooBig = 1009
/** How long a closing socket may take to answer the close frame before it is terminated. */
export const defaultCloseGraceMilliseconds = 1_000

const whileRunning: readonly LinkServerStatus[] = ['listening']
const whileRunningOrClosing: readonly LinkServerStatus[] = ['listening', 'closing']

type Listener = (...args: unknown[]) => unknown

/** The events of state changes, which are emitted in the order of the changes, after each change is complete. */
type ChangeEvent = 'join' | 'link' | 'unlink' | 'leave'

/** A parsed frame, marked when it is nested deeper than `maxDepth`. */
type DeepFrame = Frame & { [kTooDeep]?: true }

/** The connection of a socket, so that one set of socket listeners serves every connection. */
const kConnection = Symbol('fastify-link-server.connection')
type LinkSocket = WebSocket & { [kConnection]: Connection }

/** The frames about one user that every link repeats, as bytes ready for any socket. */
interface UserFrames {
  joined: EncodedFrame
  linked: EncodedFrame
}

/** The key of a method that reports the link server's state, for the tests of its invariants. */
export const kState = Symbol('fastify-link-server.state')

/** What `[kState]()` reports. */
export interface LinkServerState {
  users: LinkUser[]
  /** The linked users, in join order. */
  linkedUsers: string[]
  /** The linked users whose connection is open, known and linked back to them, in join order. */
  linkedUsersWithTheirConnection: string[]
  /** The users of the connections in the broadcast set. */
  usernamesOfLinkedConnections: Array<string | undefined>
  /** The users of every open connection that has one. */
  usernamesOfConnections: string[]
}

/** The implementation behind `fastify.linkServer`. */
export class LinkServerImpl extends EventEmitter implements LinkServer<LinkSchemas> {
  #status: LinkServerStatus = 'initializing'
  readonly #options: ResolvedOptions
  readonly #log: FastifyBaseLogger
  readonly #registry: UserRegistry<Connection> = new LocalRegistry<Connection>()
  readonly #versions: VersionCheck
  readonly #connections = new Set<Connection>()
  /** Every linked connection, for broadcasts. */
  readonly #linked = new Set<Connection>()
  /** The `krmx/joined` and `krmx/linked` frames of every user, made once: each link sends them to the linking connection. */
  readonly #userFrames = new Map<string, UserFrames>()
  /**
   * The events of the changes made but not emitted yet, as event and username pairs. A change is
   * applied whole (its state and every frame it sends) before any listener hears of it, so that a
   * listener acting on the link server never cuts into a change, and every connection sees a
   * consistent history; the events of a change a listener makes are emitted after those already due.
   */
  #changes: Array<ChangeEvent | string> = []
  #changesEmitted = 0
  #emittingChanges = false
  /** Set while a closing server makes every user leave: each connection hears only of its own user. */
  #sayingGoodbye = false
  readonly #heartbeat: Heartbeat
  readonly #writes: WriteCoalescer
  /** The handlers added with `handle`, by message type. */
  readonly #handlers = new Map<string, MessageHandler[]>()
  /** The full URL path of the route, for the AsyncAPI document. */
  readonly #address: string
  #asyncapi: AsyncApiDocument | undefined
  #invalidMessages = 0
  // One listener of each kind for every socket, instead of four closures per connection.
  readonly #onMessage: (this: WebSocket, data: Buffer, isBinary: boolean) => void
  readonly #onPong: (this: WebSocket) => void
  readonly #onError: (this: WebSocket, err: Error) => void
  readonly #onClose: (this: WebSocket) => void

  constructor (options: ResolvedOptions, log: FastifyBaseLogger, address: string) {
    super()
    const server = this
    this.#onMessage = function (data, isBinary) { server.#receive((this as LinkSocket)[kConnection], data, isBinary) }
    this.#onPong = function () { (this as LinkSocket)[kConnection].isAlive = true }
    this.#onError = function (err) { server.#socketError((this as LinkSocket)[kConnection], err) }
    this.#onClose = function () { server.#disconnect((this as LinkSocket)[kConnection]) }
    this.#options = options
    this.#log = log
    this.#address = address
    this.#versions = new VersionCheck(options.acceptedVersions)
    this.#heartbeat = new Heartbeat(options.pingIntervalMilliseconds, this.#connections)
    this.#writes = new WriteCoalescer(options.maxBufferedBytes, connection => this.#cutSlowConsumer(connection))
  }

  /**
   * Calls every listener of `event`, even when one throws: a throwing listener is logged and
   * never stops the others, nor the protocol flow that emitted the event.
   */
  override emit (event: string | symbol, ...args: unknown[]): boolean {
    // EventEmitter keeps one listener as a function and several as an array; reading it directly spares
    // the copy rawListeners() makes on every frame. Several are copied, as EventEmitter does, so that a
    // listener that removes itself does not skip the next one.
    const handler = this.#listenersOf(event)
    if (handler === undefined) {
      return false
    }
    if (typeof handler === 'function') {
      this.#call(handler, event, args)
    } else {
      for (const listener of [...handler]) {
        this.#call(listener, event, args)
      }
    }
    return true
  }

  #listenersOf (event: string | symbol): Listener | Listener[] | undefined {
    return (this as unknown as { _events: Record<string | symbol, Listener | Listener[] | undefined> })._events[event]
  }

  #call (listener: Listener, event: string | symbol, args: unknown[]): void {
    try {
      this.#watch(Reflect.apply(listener, this, args), event, undefined)
    } catch (err) {
      this.#logListenerError(err, event)
    }
  }

  /** A listener or handler that returned a promise: its rejection is logged like a throw, never left unhandled. */
  #watch (result: unknown, event: string | symbol, type: string | undefined): void {
    if (result !== undefined && isThenable(result)) {
      result.then(undefined, (err: unknown) => this.#logListenerError(err, event, type))
    }
  }

  /** `emit('message', ...)` for the hot path: with one listener, no arguments array is made. */
  #emitMessage (username: string, frame: Frame): void {
    const handler = this.#listenersOf('message')
    if (typeof handler === 'function') {
      try {
        this.#watch(handler.call(this, username, frame), 'message', undefined)
      } catch (err) {
        this.#logListenerError(err, 'message')
      }
    } else if (handler !== undefined) {
      this.emit('message', username, frame)
    }
  }

  /** Records that `event` happened to `username`; it is emitted by `#emitChanges`, after the change is complete. */
  #changed (event: ChangeEvent, username: string): void {
    this.#changes.push(event, username)
  }

  /**
   * Emits the events of the changes made so far, in order. Every operation that changes state calls it
   * when its change is complete; a listener that changes state adds events to the same queue, which
   * the outermost call emits after the events before them.
   */
  #emitChanges (): void {
    if (this.#emittingChanges) {
      return
    }
    this.#emittingChanges = true
    while (this.#changesEmitted < this.#changes.length) {
      const event = this.#changes[this.#changesEmitted++]
      const username = this.#changes[this.#changesEmitted++]
      this.emit(event, username)
    }
    this.#changes = []
    this.#changesEmitted = 0
    this.#emittingChanges = false
  }

  // Lifecycle, driven by the Fastify hooks in index.ts.

  ready (): void {
    this.#status = 'listening'
    this.#heartbeat.start()
  }

  /** The server is bound to `address`; the log names the URL clients connect to. */
  listening (address: AddressInfo): void {
    const host = address.family === 'IPv6' ? `[${address.address}]` : address.address
    this.#log.info({ port: address.port, url: `ws://${host}:${address.port}${this.#address}` }, 'link server listening')
    this.emit('listen', address.port)
  }

  /**
   * Every user leaves, in join order, then every socket is closed with 1001. Each linked connection
   * is told only that its own user was unlinked and left: the protocol's goodbye, every user's leave
   * to every connection, is O(users × connections) frames about a world that is ending, gigabytes at
   * the default limits; its own goodbye is two small frames, and the close code says the rest.
   */
  async close (otherSockets: Iterable<WebSocket> = [], closeGraceMilliseconds = defaultCloseGraceMilliseconds): Promise<void> {
    this.#status = 'closing'
    this.#heartbeat.stop()
    // Nothing starts once closing began: no queued frame is handled, and the sockets close below.
    for (const connection of this.#connections) {
      this.#forgetQueue(connection)
      connection.cancelAuthentication?.()
      this.#stopLinkTimer(connection)
    }
    for (const username of this.#registry.usernames()) {
      if (this.#registry.has(username)) {
        this.#sayingGoodbye = true
        this.#leave(username)
        this.#sayingGoodbye = false
        this.#emitChanges() // leave listeners may still send to the users that have not left yet
      }
    }
    const closing = [...this.#connections].map(connection =>
      connection.close(closeCodeGoingAway, 'server closing', closeGraceMilliseconds)
    )
    // The sockets of the application's own WebSocket routes, when it kept @fastify/websocket from closing
    // them before this goodbye (see the README); this server's own are closing already.
    for (const socket of otherSockets) {
      if (socket.readyState === socket.OPEN) {
        closing.push(closeSocket(socket, closeCodeGoingAway, 'server closing', closeGraceMilliseconds))
      }
    }
    await Promise.all(closing)
  }

  closed (): void {
    this.#status = 'closed'
    this.#log.info('link server closed')
    this.emit('close')
    this.removeAllListeners()
    this.#handlers.clear()
  }

  /** Takes a new WebSocket of the route. */
  accept (socket: WebSocket, request: FastifyRequest): void {
    if (this.#status !== 'listening') {
      socket.close(closeCodeGoingAway, 'server closing')
      return
    }
    const connection = new Connection(socket, request, this.#writes, this.#options.rateLimit?.burst ?? 0, performance.now())
    this.#connections.add(connection)
    this.#startLinkTimer(connection)
    ;(socket as LinkSocket)[kConnection] = connection
    socket.on('message', this.#onMessage)
    socket.on('pong', this.#onPong)
    socket.on('error', this.#onError)
    socket.on('close', this.#onClose)
  }

  /**
   * Refuses an upgrade before the WebSocket is opened (the route's `preHandler`): HTTP 403 for an
   * origin that is not allowed, HTTP 503 when `maxConnections` connections are open.
   */
  admit (request: FastifyRequest, reply: FastifyReply, done: HookHandlerDoneFunction): void {
    if (!request.ws) {
      done() // a plain GET, which @fastify/websocket answers with 404
      return
    }
    const origin = request.headers.origin
    if (!this.#isAllowedOrigin(origin, request)) {
      this.#log.info({ origin }, 'upgrade refused: origin not allowed')
      reply.code(403).send({
        statusCode: 403, code: 'FST_LINK_ORIGIN_NOT_ALLOWED', error: 'Forbidden', message: `Origin ${String(origin)} is not allowed`
      })
      return
    }
    if (this.#connections.size >= this.#options.maxConnections) {
      this.#log.warn({ maxConnections: this.#options.maxConnections }, 'upgrade refused: too many connections')
      reply.code(503).send({
        statusCode: 503, code: 'FST_LINK_TOO_MANY_CONNECTIONS', error: 'Service Unavailable', message: 'Too many connections'
      })
      return
    }
    done()
  }

  // The user API.

  handle (type: string, handler: MessageHandler<never>): this {
    if (typeof type !== 'string') {
      throw new FST_LINK_INVALID_HANDLER(String(type), 'the type must be a string')
    }
    if (typeof handler !== 'function') {
      throw new FST_LINK_INVALID_HANDLER(type, 'the handler must be a function')
    }
    if (isProtocolType(type)) {
      throw new FST_LINK_RESERVED_TYPE('handle', type)
    }
    if (this.#options.strictMessages && this.#options.messages?.has(type) !== true) {
      throw new FST_LINK_UNKNOWN_MESSAGE_TYPE('handle', type, 'messages')
    }
    const handlers = this.#handlers.get(type)
    if (handlers === undefined) {
      this.#handlers.set(type, [handler as MessageHandler])
    } else {
      handlers.push(handler as MessageHandler)
    }
    return this
  }

  typed<T extends LinkSchemas> (): LinkServer<T> {
    return this as LinkServer<LinkSchemas> as LinkServer<T>
  }

  send (username: string, message: LinkMessage): void {
    this.#assertStatus('send a message', whileRunningOrClosing)
    const data = this.#serialize('send', message)
    this.#linkedConnectionOf('send a message', username).send(data)
  }

  broadcast (message: LinkMessage, skipUsername?: string): void {
    this.#assertStatus('broadcast a message', whileRunningOrClosing)
    const data = this.#serialize('broadcast', message)
    const skipped = skipUsername === undefined ? undefined : this.#registry.connectionOf(skipUsername)
    this.#broadcastFrame(data, skipped)
  }

  join (username: string): void {
    this.#assertStatus('join a user', whileRunning)
    if (!this.#isValidUsername(username)) {
      throw new FST_LINK_INVALID_USERNAME(username)
    }
    if (this.#registry.has(username)) {
      throw new FST_LINK_USER_EXISTS(username)
    }
    if (this.#isFull()) {
      throw new FST_LINK_SERVER_FULL(username, this.#options.maxUsers)
    }
    this.#join(username, undefined)
    this.#emitChanges()
  }

  unlink (username: string): void {
    this.#assertStatus('unlink a user', whileRunningOrClosing)
    this.#linkedConnectionOf('unlink a user', username)
    this.#unlink(username)
    this.#emitChanges()
  }

  kick (username: string): void {
    this.#assertStatus('kick a user', whileRunning)
    if (!this.#registry.has(username)) {
      throw new FST_LINK_UNKNOWN_USER('kick a user', username)
    }
    this.#log.info({ username }, 'user kicked')
    this.#leave(username)
    this.#emitChanges()
  }

  getUsers (): LinkUser[] {
    return this.#registry.users()
  }

  getUser (username: string): LinkUser | undefined {
    return this.#registry.has(username) ? { username, isLinked: this.isLinked(username) } : undefined
  }

  isLinked (username: string): boolean {
    return this.#registry.connectionOf(username) !== undefined
  }

  getStatus (): LinkServerStatus {
    return this.#status
  }

  [kState] (): LinkServerState {
    const users = this.#registry.users()
    const linkedUsers = users.filter(user => user.isLinked).map(user => user.username)
    return {
      users,
      linkedUsers,
      linkedUsersWithTheirConnection: linkedUsers.filter(username => {
        const connection = this.#registry.connectionOf(username) as Connection
        return connection.username === username && connection.isOpen && this.#connections.has(connection) && this.#linked.has(connection)
      }),
      usernamesOfLinkedConnections: [...this.#linked].map(connection => connection.username),
      usernamesOfConnections: [...this.#connections].flatMap(connection => connection.username === undefined ? [] : [connection.username])
    }
  }

  getStats (): LinkServerStats {
    return {
      connections: this.#connections.size,
      users: this.#registry.size,
      linkedUsers: this.#linked.size,
      invalidMessages: this.#invalidMessages
    }
  }

  asyncapi (): AsyncApiDocument {
    this.#asyncapi ??= buildAsyncApi({
      address: this.#address,
      info: this.#options.asyncapiInfo,
      messages: this.#options.messages,
      serverMessages: this.#options.serverMessages,
      strictMessages: this.#options.strictMessages
    })
    return structuredClone(this.#asyncapi)
  }

  // Incoming frames.

  #receive (connection: Connection, data: Buffer, isBinary: boolean): void {
    if (!connection.isOpen) {
      return // a connection that is being closed is not listened to any more
    }
    if (!this.#withinRateLimit(connection)) {
      this.#closeConnection(connection, closeCodePolicyViolation, 'rate limit exceeded')
      return
    }
    if (data.length > this.#options.maxPayload) {
      // Only when @fastify/websocket was registered by the application with a larger maxPayload of its own.
      this.#closeConnection(connection, closeCodeTooBig, 'message too big')
      return
    }
    const frame = parseFrame(data, isBinary, this.#options.maxDepth)
    if (connection.linkInFlight) {
      this.#enqueue(connection, frame, data.length)
      return
    }
    this.#handle(connection, frame)
  }

  /** Keeps a frame that arrived while a link is being decided; a connection that sends too much meanwhile is closed. */
  #enqueue (connection: Connection, frame: Frame | undefined, bytes: number): void {
    connection.queuedBytes += bytes
    if (connection.queue.length >= this.#options.maxQueuedFrames || connection.queuedBytes > this.#options.maxQueuedBytes) {
      this.#closeConnection(connection, closeCodePolicyViolation, 'too many frames while linking')
      return
    }
    connection.queue.push({ frame, bytes })
  }

  #forgetQueue (connection: Connection): void {
    connection.queue.length = 0
    connection.queuedBytes = 0
  }

  #handle (connection: Connection, frame: Frame | undefined): void {
    if (connection.username === undefined) {
      this.#handleUnlinked(connection, frame)
    } else {
      this.#handleLinked(connection, connection.username, frame)
      this.#emitChanges()
    }
  }

  #handleLinked (connection: Connection, username: string, frame: Frame | undefined): void {
    if (frame === undefined) {
      this.#log.warn({ username }, 'user sent a malformed frame and is unlinked')
      this.#unlink(username)
      return
    }
    switch (frame.type) {
      case linkType:
      case unlinkType:
        this.#unlink(username)
        return
      case leaveType:
        this.#leave(username)
        return
    }
    if (isProtocolType(frame.type)) {
      this.#log.warn({ username, type: frame.type }, 'user sent an unknown frame type with the reserved krmx/ prefix and is unlinked')
      this.#unlink(username)
      return
    }
    if ((frame as DeepFrame)[kTooDeep] === true) {
      this.#refuse(connection, username, frame, [tooDeepError(this.#options.maxDepth)])
      return
    }
    const check = this.#options.messages?.get(frame.type)
    if (check === undefined) {
      if (this.#options.strictMessages) {
        this.#refuse(connection, username, frame, [unregisteredTypeError])
        return
      }
    } else {
      const errors = payloadErrors(check, frame.payload)
      if (errors !== undefined) {
        this.#refuse(connection, username, frame, errors)
        return
      }
    }
    this.#emitMessage(username, frame)
    const handlers = this.#handlers.get(frame.type)
    if (handlers !== undefined) {
      for (const handler of handlers) {
        try {
          this.#watch(handler(username, frame.payload), 'message', frame.type)
        } catch (err) {
          this.#logListenerError(err, 'message', frame.type)
        }
      }
    }
  }

  /** An application message failed its schema: it is dropped, or its user unlinked, as `invalidMessage` says. */
  #refuse (connection: Connection, username: string, frame: Frame, errors: LinkMessageError[]): void {
    this.#invalidMessages++
    const unlink = this.#options.invalidMessage === 'unlink'
    this.#log.warn({ username, type: frame.type, error: errors[0] },
      unlink ? 'user sent an invalid message and is unlinked' : 'user sent an invalid message; it is dropped')
    this.emit('invalidMessage', username, frame, errors)
    if (unlink && connection.username === username) {
      this.#unlink(username) // unless an invalidMessage listener unlinked or kicked the user already
    }
  }

  #handleUnlinked (connection: Connection, frame: Frame | undefined): void {
    if (frame === undefined) {
      this.#reject(connection, 'invalid message')
      return
    }
    if (frame.type !== linkType) {
      this.#reject(connection, 'unlinked connection')
      return
    }
    const payload = frame.payload
    if (!isLinkPayload(payload)) {
      this.#reject(connection, 'invalid link request')
      return
    }
    if (!this.#versions.accepts(payload.version)) {
      this.#reject(connection, this.#versions.rejectReason(payload.version))
      return
    }
    if (!this.#isValidUsername(payload.username)) {
      this.#reject(connection, 'invalid username')
      return
    }
    connection.linkInFlight = true
    this.#link(connection, payload.username, payload.auth).finally(() => {
      connection.linkInFlight = false
      this.#drain(connection)
    })
  }

  /** Handles the frames that waited for a link decision, in arrival order, until another link is in flight. */
  #drain (connection: Connection): void {
    while (!connection.linkInFlight && connection.queue.length > 0) {
      const { frame, bytes } = connection.queue.shift() as QueuedFrame
      connection.queuedBytes -= bytes
      this.#handle(connection, frame)
    }
  }

  async #link (connection: Connection, username: string, auth: string | undefined): Promise<void> {
    const claim = await this.#registry.claim(username, this.#options.acceptNewUsers)
    if (!claim.claimed) {
      if (claim.refusal === 'already-linked') {
        // Not counted towards maxLinkAttempts: a client whose old connection is not yet known to be dead retries this.
        this.#reject(connection, `user ${username} is already linked to a connection`, false)
      } else {
        this.#reject(connection, 'server is not accepting new users')
      }
      return
    }
    if (claim.isNewUser && this.#isFull()) {
      this.#registry.release(username)
      this.#reject(connection, 'server is full')
      return
    }
    const info: AuthenticateInfo = { isNewUser: claim.isNewUser, auth, request: connection.request }
    /** Which link of the connection this authentication made, once it made one. */
    const made: { link?: number } = {}
    const authentication = authenticate(
      this.rawListeners('authenticate') as unknown as AuthenticateListener[],
      username,
      info,
      this.#options.authTimeoutMilliseconds,
      {
        onError: err => this.#log.warn({ err, username }, 'an authenticate listener or handler failed; the link is rejected'),
        onLate: call => this.#lateAuthentication(connection, username, call, made.link)
      }
    )
    connection.cancelAuthentication = authentication.cancel
    const reason = await authentication.decision
    connection.cancelAuthentication = undefined
    this.#registry.release(username)
    if (!connection.isOpen || this.#status !== 'listening') {
      return
    }
    if (reason !== undefined) {
      this.#reject(connection, reason)
      return
    }
    if (!this.#registry.has(username) && !this.#options.acceptNewUsers) {
      // The user left while its link was being authenticated, and may not be created again.
      this.#reject(connection, 'server is not accepting new users')
      return
    }
    if (!this.#registry.has(username) && this.#isFull()) {
      // Other new users were created while this one was being authenticated.
      this.#reject(connection, 'server is full')
      return
    }
    this.#commitLink(connection, username)
    made.link = connection.links
  }

  /**
   * `reject` or `markAsync` was called after the decision: the application meant to decide later than it
   * did. The link the authentication made (`linkedAs`, set only when it was accepted and committed) is
   * undone (fail closed), if the connection is still on it.
   */
  #lateAuthentication (connection: Connection, username: string, call: string, linkedAs: number | undefined): void {
    const isOnThatLink = linkedAs !== undefined && connection.username === username && connection.links === linkedAs
    this.#log.error({ username, call }, isOnThatLink
      ? `${call} was called after the link was accepted; the user is unlinked`
      : `${call} was called after the link was decided; it is ignored`)
    if (isOnThatLink) {
      this.#unlink(username)
      this.#emitChanges()
    }
  }

  /** Links `connection` to `username` and sends every frame of the link; its events follow when it is complete. */
  #commitLink (connection: Connection, username: string): void {
    connection.send(acceptedFrame)
    if (this.#registry.has(username)) {
      this.#attach(connection, username)
    } else {
      this.#join(username, connection)
    }
    for (const [user, frames] of this.#userFrames) {
      connection.send(frames.joined)
      if (this.#registry.connectionOf(user) !== undefined) {
        connection.send(frames.linked)
      }
    }
    this.#log.info({ username }, 'user linked')
    this.#broadcastFrame((this.#userFrames.get(username) as UserFrames).linked, connection)
    this.#changed('link', username)
    this.#emitChanges()
  }

  #disconnect (connection: Connection): void {
    this.#connections.delete(connection)
    this.#drop(connection)
  }

  /** Forgets everything a connection that is closing or closed was doing: its frames, its link request, its user. */
  #drop (connection: Connection): void {
    this.#forgetQueue(connection) // nothing a closing connection sent is handled any more
    connection.cancelAuthentication?.()
    if (connection.username !== undefined) {
      this.#unlink(connection.username)
    }
    this.#stopLinkTimer(connection)
    this.#emitChanges()
  }

  /** Closes a connection that broke a rule; its user is unlinked at once, not when the closing handshake ends. */
  #closeConnection (connection: Connection, code: number, reason: string): void {
    if (!connection.isOpen) {
      return
    }
    this.#log.warn({ username: connection.username, code, reason }, 'connection closed')
    this.#drop(connection)
    connection.close(code, reason, defaultCloseGraceMilliseconds) // never rejects
  }

  /** A client that does not read what it is sent: it is cut off, so that its buffer cannot grow without bound. */
  #cutSlowConsumer (connection: Connection): void {
    this.#log.warn({ username: connection.username, bufferedBytes: connection.socket.bufferedAmount }, 'slow consumer terminated')
    this.#drop(connection)
    connection.socket.terminate()
  }

  /** ws found a protocol violation (a frame beyond maxPayload, invalid UTF-8, ...) and is closing the socket itself. */
  #socketError (connection: Connection, err: Error): void {
    this.#log.warn({ err, username: connection.username }, 'websocket error')
    this.#drop(connection)
  }

  #startLinkTimer (connection: Connection): void {
    const timeout = this.#options.linkTimeoutMilliseconds
    if (timeout > 0) {
      connection.linkTimer = setTimeout(() => this.#closeConnection(connection, closeCodePolicyViolation, 'link timeout'), timeout)
    }
  }

  #stopLinkTimer (connection: Connection): void {
    clearTimeout(connection.linkTimer)
    connection.linkTimer = undefined
  }

  /** Takes one token of the connection's bucket, after refilling it for the time that passed. */
  #withinRateLimit (connection: Connection): boolean {
    const limit = this.#options.rateLimit
    if (limit === undefined) {
      return true
    }
    const now = performance.now()
    connection.tokens = Math.min(limit.burst, connection.tokens + (now - connection.refilledAt) * limit.rate / 1000)
    connection.refilledAt = now
    if (connection.tokens < 1) {
      return false
    }
    connection.tokens--
    return true
  }

  // State changes shared by the protocol and the user API.

  /** Creates `username`; when `connection` is given the new user is linked to it before anyone hears of the join. */
  #join (username: string, connection: Connection | undefined): void {
    this.#registry.join(username)
    const frames = { joined: joinedFrame(username), linked: linkedFrame(username) }
    this.#userFrames.set(username, frames)
    if (connection !== undefined) {
      this.#attach(connection, username)
    }
    this.#log.info({ username }, 'user joined')
    this.#broadcastFrame(frames.joined, connection)
    this.#changed('join', username)
  }

  #attach (connection: Connection, username: string): void {
    this.#registry.link(username, connection)
    connection.username = username
    connection.links++
    connection.rejections = 0
    this.#stopLinkTimer(connection)
    this.#linked.add(connection)
  }

  #unlink (username: string): void {
    const connection = this.#registry.connectionOf(username) as Connection
    if (this.#sayingGoodbye) {
      connection.send(unlinkedFrame(username))
    } else {
      this.#broadcastFrame(unlinkedFrame(username), undefined)
    }
    this.#registry.unlink(username)
    this.#linked.delete(connection)
    connection.username = undefined
    if (connection.isOpen) {
      this.#startLinkTimer(connection)
    }
    this.#log.info({ username }, 'user unlinked')
    this.#changed('unlink', username)
  }

  #leave (username: string): void {
    const connection = this.#registry.connectionOf(username)
    if (connection !== undefined) {
      this.#unlink(username)
    }
    const frame = leftFrame(username)
    connection?.send(frame)
    this.#registry.leave(username)
    this.#userFrames.delete(username)
    if (!this.#sayingGoodbye) {
      this.#broadcastFrame(frame, undefined)
    }
    this.#log.info({ username }, 'user left')
    this.#changed('leave', username)
  }

  /** Sends one frame to every linked connection but `except`: the same bytes to all of them. */
  #broadcastFrame (frame: EncodedFrame, except: Connection | undefined): void {
    for (const connection of this.#linked) {
      if (connection !== except) {
        connection.send(frame)
      }
    }
  }

  #logListenerError (err: unknown, event: string | symbol, type?: string): void {
    this.#log.error({ err, event, type }, type === undefined ? 'a link server listener threw' : 'a message handler threw')
  }

  /** Answers a link request with `krmx/rejected`; one that `counts` brings the connection closer to `maxLinkAttempts`. */
  #reject (connection: Connection, reason: string, counts = true): void {
    this.#log.debug({ reason }, 'link request rejected')
    connection.send(rejectedFrame(reason))
    if (counts && ++connection.rejections >= this.#options.maxLinkAttempts) {
      this.#closeConnection(connection, closeCodePolicyViolation, 'too many rejected link requests')
    }
  }

  // Checks.

  /** Whether `maxUsers` users exist, so that no new one may be created. */
  #isFull (): boolean {
    return this.#registry.size >= this.#options.maxUsers
  }

  #isAllowedOrigin (origin: string | undefined, request: FastifyRequest): boolean {
    const isAllowed = this.#options.isAllowedOrigin
    if (isAllowed === undefined) {
      return true
    }
    return this.#predicate('allowedOrigins', { origin }, 'the origin is refused', () => isAllowed(origin, request))
  }

  #isValidUsername (username: string): boolean {
    return this.#predicate('isValidUsername', { username }, 'the username is treated as invalid', () => this.#options.isValidUsername(username))
  }

  /**
   * The answer of an application predicate, failing closed: one that throws, or returns a promise (an
   * `async` function, whose promise is always truthy), answers `false`, and is logged.
   */
  #predicate (name: string, context: Record<string, unknown>, consequence: string, predicate: () => unknown): boolean {
    try {
      const answer = predicate()
      if (isThenable(answer)) {
        answer.then(undefined, () => {}) // its outcome is not waited for, so its rejection is no one's to handle
        this.#log.error(context, `${name} returned a promise, but must answer synchronously; ${consequence}`)
        return false
      }
      return Boolean(answer)
    } catch (err) {
      this.#log.error({ err, ...context }, `${name} threw; ${consequence}`)
      return false
    }
  }

  #assertStatus (action: string, allowed: readonly LinkServerStatus[]): void {
    if (allowed.includes(this.#status)) {
      return
    }
    if (this.#status === 'initializing') {
      throw new FST_LINK_NOT_READY(action)
    }
    throw new FST_LINK_CLOSED(action, this.#status)
  }

  #serialize (action: 'send' | 'broadcast', message: LinkMessage): EncodedFrame {
    if (!isFrame(message)) {
      throw new FST_LINK_INVALID_MESSAGE(action)
    }
    if (isProtocolType(message.type)) {
      throw new FST_LINK_RESERVED_TYPE(action, message.type)
    }
    const checks = this.#options.serverMessages
    if (checks !== undefined) {
      const check = checks.get(message.type)
      if (check === undefined) {
        throw new FST_LINK_UNKNOWN_MESSAGE_TYPE(action, message.type, 'serverMessages')
      }
      const errors = payloadErrors(check, message.payload)
      if (errors !== undefined) {
        throw new FST_LINK_INVALID_PAYLOAD(action, message.type, `${errors[0].path}: ${errors[0].message}`)
      }
    }
    let text: string
    try {
      text = JSON.stringify(message)
    } catch (err) {
      throw new FST_LINK_UNENCODABLE_MESSAGE(action, message.type, err instanceof Error ? err.message : 'a toJSON method threw')
    }
    return encodeText(text)
  }

  #linkedConnectionOf (action: string, username: string): Connection {
    if (!this.#registry.has(username)) {
      throw new FST_LINK_UNKNOWN_USER(action, username)
    }
    const connection = this.#registry.connectionOf(username)
    if (connection === undefined) {
      throw new FST_LINK_USER_NOT_LINKED(action, username)
    }
    return connection
  }
}
