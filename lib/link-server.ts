import { EventEmitter } from 'node:events'
import type { AddressInfo } from 'node:net'
import { performance } from 'node:perf_hooks'
import type { FastifyBaseLogger, FastifyReply, FastifyRequest, HookHandlerDoneFunction } from 'fastify'
import type { WebSocket } from 'ws'
import type {
  AsyncApiDocument,
  AuthenticateInfo,
  LinkEventInfo,
  LinkMessage,
  LinkMessageError,
  LinkSchemas,
  LinkServer,
  LinkServerStats,
  LinkServerStatus,
  LinkUser,
  LinkUserInfo,
  MessageHandler
} from '../types/index.js'
import { buildAsyncApi } from './asyncapi.js'
import { authenticate, authenticationFailedReason, type AuthenticateListener, authenticationTimeoutReason } from './authenticate.js'
import {
  type Admission,
  type Backend,
  type BackendSink,
  type Change,
  type Commit,
  CommitRefused,
  type LeaveCause,
  type LeaveChange,
  type LinkChange,
  type Refusal,
  type SnapshotUser,
  type UnlinkCause
} from './backend/backend.js'
import { closeSocket, Connection, logName, type QueuedFrame, WriteCoalescer } from './connection.js'
import { Counts, type InvalidMessageReason, type RejectionLabel } from './counts.js'
import {
  FST_LINK_CLOSED,
  FST_LINK_CLUSTER_UNAVAILABLE,
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
  kTooDeep,
  leaveType,
  leftFrame,
  linkType,
  parseFrame,
  rejectedFrame,
  unlinkedFrame,
  unlinkType
} from './frames.js'
import { Heartbeat } from './heartbeat.js'
import { releaseUpgrade } from './upgrade.js'
import { payloadErrors, tooDeepError, unregisteredTypeError } from './messages.js'
import { LocalLinks } from './local-links.js'
import type { LinkObserver, MetricsSource } from './metrics.js'
import type { ResolvedOptions } from './options.js'
import { isThenable } from './thenable.js'
import { type MirroredUser, type UserLink, UserSpace } from './user-space.js'
import { VersionCheck } from './version.js'

/** The close code of every socket when the server closes: the endpoint is going away. */
export const closeCodeGoingAway = 1001
/** The close code of a connection that broke a rule: link timeout, link attempts, rate limit. */
export const closeCodePolicyViolation = 1008
/** The close code of a connection that sent a frame larger than `maxPayload`. */
export const closeCodeTooBig = 1009
/**
 * With replay on, how often each linked connection that was sent messages since its last confirmation is
 * pinged to confirm them: a pong for every flush would double the reads of a busy server.
 */
export const confirmIntervalMilliseconds = 100

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

/** A link being committed: its connection, and where the link it makes is recorded, for a late authentication call. */
interface Linking {
  connection: Connection
  made: { link?: number }
}

/** What `#encodeUserData` answers for data that cannot be attached. */
const kUnencodable = Symbol('fastify-link-server.unencodable')

/** The close code of a connection whose user was linked from another connection (`linkConflict: 'takeover'`). */
export const closeCodeTakenOver = 4001

/** The reason a refused link request is given, and its metrics label, by refusal. */
const refusalReasons: Record<Exclude<Refusal, 'already-linked'>, [string, RejectionLabel]> = {
  'not-accepting-new-users': ['server is not accepting new users', 'not_accepting_new_users'],
  full: ['server is full', 'full'],
  unavailable: ['cluster unavailable', 'cluster_unavailable']
}

/** Why a linked user that leaves is unlinked, by why it leaves (one whose window ended was not linked). */
const unlinkCauseOfLeave: Record<LeaveCause, UnlinkCause> = { client: 'client', kick: 'server', window: 'client', close: 'close' }

/** The metrics label of a reason the authentication gave: the protocol's own, or `other` for the application's. */
function authenticationLabel (reason: string): RejectionLabel {
  switch (reason) {
    case authenticationTimeoutReason:
      return 'authentication_timeout'
    case authenticationFailedReason:
      return 'authentication_failed'
    default:
      return 'other'
  }
}

/** The implementation behind `fastify.linkServer`. */
export class LinkServerImpl extends EventEmitter implements LinkServer<LinkSchemas> {
  #status: LinkServerStatus = 'initializing'
  readonly #options: ResolvedOptions
  readonly #log: FastifyBaseLogger
  /** Where the user space is decided: this process, or the cluster's Redis. */
  readonly #backend: Backend
  /** This node's mirror of the user space, changed only by the changes the backend hands back. */
  readonly #users = new UserSpace()
  /** This node's linked connections, by username. */
  readonly #local = new LocalLinks()
  /** The connections whose link is being committed, by the token of their claim. */
  readonly #linking = new Map<string, Linking>()
  /**
   * With replay on in a cluster: the messages (frame and number pairs) that reached this node for a user whose
   * link here is committed but not yet applied; they follow its replay.
   */
  readonly #early = new Map<string, Array<EncodedFrame | number>>()
  readonly #admission: Admission
  readonly #versions: VersionCheck
  readonly #connections = new Set<Connection>()
  /**
   * The events of the changes made but not emitted yet, as event and username pairs. A change is
   * applied whole (its state and every frame it sends) before any listener hears of it, so that a
   * listener acting on the link server never cuts into a change, and every connection sees a
   * consistent history; the events of a change a listener makes are emitted after those already due.
   */
  #changes: Array<ChangeEvent | string | LinkEventInfo | undefined> = []
  #changesEmitted = 0
  #emittingChanges = false
  /** Set while a closing server makes every user leave: each connection hears only of its own user. */
  #sayingGoodbye = false
  readonly #heartbeat: Heartbeat
  #confirming: NodeJS.Timeout | undefined
  readonly #writes: WriteCoalescer
  /** The handlers added with `handle`, by message type. */
  readonly #handlers = new Map<string, MessageHandler[]>()
  /** The full URL path of the route, for the AsyncAPI document. */
  readonly #address: string
  #asyncapi: AsyncApiDocument | undefined
  /** What this node counts for its metrics, always. */
  readonly counts = new Counts()
  /** With metrics on: the histograms. */
  #observer: LinkObserver | undefined
  // One listener of each kind for every socket, instead of four closures per connection.
  readonly #onMessage: (this: WebSocket, data: Buffer, isBinary: boolean) => void
  readonly #onPong: (this: WebSocket, data: Buffer) => void
  readonly #onError: (this: WebSocket, err: Error) => void
  readonly #onClose: (this: WebSocket) => void

  constructor (options: ResolvedOptions, log: FastifyBaseLogger, address: string, backend: Backend) {
    super()
    this.#backend = backend
    this.#admission = { acceptNewUsers: options.acceptNewUsers, maxUsers: options.maxUsers }
    const server = this
    this.#onMessage = function (data, isBinary) { server.#receive((this as LinkSocket)[kConnection], data, isBinary) }
    this.#onPong = function (data) { server.#pong((this as LinkSocket)[kConnection], data) }
    this.#onError = function (err) { server.#socketError((this as LinkSocket)[kConnection], err) }
    this.#onClose = function () { server.#disconnect((this as LinkSocket)[kConnection]) }
    this.#options = options
    this.#log = log
    this.#address = address
    this.#versions = new VersionCheck(options.acceptedVersions)
    this.#heartbeat = new Heartbeat(options.pingIntervalMilliseconds, this.#connections, connection => this.#closeSilent(connection))
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
  #changed (event: ChangeEvent, username: string, info?: LinkEventInfo): void {
    this.#changes.push(event, username, info)
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
      const event = this.#changes[this.#changesEmitted++] as ChangeEvent
      const username = this.#changes[this.#changesEmitted++] as string
      const info = this.#changes[this.#changesEmitted++]
      if (info === undefined) {
        this.emit(event, username)
      } else {
        this.emit(event, username, info)
      }
    }
    this.#changes = []
    this.#changesEmitted = 0
    this.#emittingChanges = false
  }

  /** Turns the histograms of the metrics on (before `ready`, so that the backend's round trips are observed too). */
  observeWith (observer: LinkObserver): void {
    this.#observer = observer
    this.#sink.roundTrip = observer.roundTrip
  }

  /** What the metrics read when scraped. */
  readonly metricsSource: MetricsSource = {
    counts: this.counts,
    framesSent: () => this.#writes.framesSent,
    users: () => this.#users.size,
    linkedUsers: () => this.#local.size,
    connections: () => this.#connections.size,
    nodes: () => this.#backend.nodes,
    refusedInputs: () => this.#backend.refusedInputs
  }

  /** Why the link server does not take links now, for the readiness endpoint; `undefined` when it does. */
  notReadyReason (): string | undefined {
    if (this.#status !== 'listening') {
      return this.#status === 'initializing' ? 'the link server is starting' : 'the link server is closing'
    }
    return this.#backend.isAvailable ? undefined : 'the cluster is unavailable: Redis does not answer'
  }

  // Lifecycle, driven by the Fastify hooks in index.ts.

  /** Starts the backend (connects to the cluster's Redis, and loads its user space), then takes links. */
  async ready (): Promise<void> {
    await this.#backend.start(this.#sink)
    this.#status = 'listening'
    this.#heartbeat.start()
    if (this.#options.sessions.replay !== undefined) {
      this.#confirming = setInterval(() => {
        for (const connection of this.#local.values()) {
          connection.confirmSent()
        }
      }, confirmIntervalMilliseconds)
    }
  }

  /** What the backend calls: the changes of every node, snapshots, and messages sent from other nodes. */
  readonly #sink: BackendSink = {
    apply: change => this.#apply(change),
    reset: (users, keepMissing) => this.#reset(users, keepMissing),
    deliver: (username, frame, number) => this.#deliver(username, frame, number),
    broadcast: (text, skip) => this.#local.broadcast(encodeText(text), skip === undefined ? undefined : this.#local.get(skip)),
    linkedHere: () => [...this.#local.values()].filter(connection => connection.isOpen).map(connection => {
      const user = this.#users.get(connection.username as string) as MirroredUser
      return { username: connection.username as string, generation: connection.generation as number, order: user.order, data: user.data, sent: connection.sent }
    })
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
   *
   * In a cluster the user space outlives this node: its users are unlinked, not removed, so that they
   * can link again on another node; each of its connections hears only of its own unlink.
   */
  async close (otherSockets: Iterable<WebSocket> = []): Promise<void> {
    const closeGraceMilliseconds = this.#options.closeGraceMilliseconds
    this.#status = 'closing'
    this.#heartbeat.stop()
    clearInterval(this.#confirming)
    // Nothing starts once closing began: no queued frame is handled, and the sockets close below.
    for (const connection of this.#connections) {
      this.#forgetQueue(connection)
      connection.cancelAuthentication?.()
      this.#stopLinkTimer(connection)
    }
    if (this.#backend.isLocal) {
      for (const username of this.#users.usernames()) {
        if (this.#users.get(username) !== undefined) {
          this.#sayingGoodbye = true
          this.#commit(this.#backend.leave(username, 'close'), 'close', username)
          this.#sayingGoodbye = false
          this.#emitChanges() // leave listeners may still send to the users that have not left yet
        }
      }
    } else {
      this.#sayingGoodbye = true
      await this.#backend.unlinkOwn()
      this.#sayingGoodbye = false
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
    await this.#backend.stop()
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
    releaseUpgrade(socket, request)
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
    if (this.#status !== 'listening') {
      // Draining: no new connection while the users are told goodbye (Fastify's return503OnClosing may be off).
      reply.code(503).send({ statusCode: 503, code: 'FST_LINK_CLOSING', error: 'Service Unavailable', message: 'The server is closing' })
      return
    }
    const origin = request.headers.origin
    if (!this.#isAllowedOrigin(origin, request)) {
      request.log.info({ name: logName, origin }, 'upgrade refused: origin not allowed')
      reply.code(403).send({
        statusCode: 403, code: 'FST_LINK_ORIGIN_NOT_ALLOWED', error: 'Forbidden', message: `Origin ${String(origin)} is not allowed`
      })
      return
    }
    if (this.#connections.size >= this.#options.maxConnections) {
      request.log.warn({ name: logName, maxConnections: this.#options.maxConnections }, 'upgrade refused: too many connections')
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
    if (this.#options.sessions.replay !== undefined) {
      if (this.#users.get(username) === undefined) {
        throw new FST_LINK_UNKNOWN_USER('send a message', username)
      }
      this.#backend.post(username, undefined, data) // kept for it until it confirms it, linked or not
      return
    }
    const link = this.#linkOf('send a message', username)
    const connection = this.#local.get(username)
    if (connection !== undefined) {
      connection.send(data)
    } else {
      this.#backend.deliver(link.node, username, data.payload.toString())
    }
  }

  broadcast (message: LinkMessage, skipUsername?: string): void {
    this.#assertStatus('broadcast a message', whileRunningOrClosing)
    const data = this.#serialize('broadcast', message)
    if (this.#options.sessions.replay !== undefined) {
      this.#backend.post(undefined, skipUsername, data)
      return
    }
    this.#local.broadcast(data, skipUsername === undefined ? undefined : this.#local.get(skipUsername))
    this.#backend.broadcast(data.payload.toString(), skipUsername)
  }

  join (username: string): Promise<void> {
    this.#assertStatus('join a user', whileRunning)
    if (!this.#isValidUsername(username)) {
      throw new FST_LINK_INVALID_USERNAME(username)
    }
    if (this.#users.get(username) !== undefined) {
      throw new FST_LINK_USER_EXISTS(username)
    }
    if (this.#isFull()) {
      throw new FST_LINK_SERVER_FULL(username, this.#options.maxUsers)
    }
    return this.#commit(this.#backend.join(username, this.#options.maxUsers), 'join a user', username)
  }

  unlink (username: string): Promise<void> {
    this.#assertStatus('unlink a user', whileRunningOrClosing)
    this.#linkOf('unlink a user', username)
    return this.#commit(this.#backend.unlink(username, undefined, 'server'), 'unlink a user', username)
  }

  kick (username: string): Promise<void> {
    this.#assertStatus('kick a user', whileRunning)
    if (this.#users.get(username) === undefined) {
      throw new FST_LINK_UNKNOWN_USER('kick a user', username)
    }
    this.#log.info({ username }, 'user kicked')
    return this.#commit(this.#backend.leave(username, 'kick'), 'kick a user', username)
  }

  getUsers (): LinkUser[] {
    return this.#users.users()
  }

  getUser (username: string): LinkUserInfo | undefined {
    const user = this.#users.get(username)
    if (user === undefined) {
      return undefined
    }
    const info: LinkUserInfo = { username, isLinked: user.link !== undefined }
    if (user.data !== undefined) {
      info.data = JSON.parse(user.data) // a copy of its own for every caller, as another node would have it
    }
    return info
  }

  isLinked (username: string): boolean {
    return this.#users.get(username)?.link !== undefined
  }

  getStatus (): LinkServerStatus {
    return this.#status
  }

  getStats (): LinkServerStats {
    return {
      connections: this.#connections.size,
      users: this.#users.size,
      linkedUsers: this.#local.size,
      invalidMessages: this.counts.invalidMessageCount()
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
    this.counts.framesReceived++
    if (!this.#withinRateLimit(connection)) {
      this.counts.rateLimited++
      this.#closeConnection(connection, closeCodePolicyViolation, 'rate limit exceeded')
      return
    }
    if (data.length > this.#options.maxPayload) {
      // Only when @fastify/websocket was registered by the application with a larger maxPayload of its own.
      this.#closeConnection(connection, closeCodeTooBig, 'message too big')
      return
    }
    const frame = parseFrame(data, isBinary, this.#options.maxDepth)
    if (connection.isWaiting) {
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
      connection.log.warn({ username }, 'user sent a malformed frame and is unlinked')
      this.#unlinkConnection(connection, 'client')
      return
    }
    switch (frame.type) {
      case linkType:
      case unlinkType:
        this.#unlinkConnection(connection, 'client')
        return
      case leaveType:
        this.#leaveConnection(connection)
        return
    }
    if (isProtocolType(frame.type)) {
      connection.log.warn({ username, type: frame.type }, 'user sent an unknown frame type with the reserved krmx/ prefix and is unlinked')
      this.#unlinkConnection(connection, 'client')
      return
    }
    if ((frame as DeepFrame)[kTooDeep] === true) {
      this.#refuse(connection, username, frame, [tooDeepError(this.#options.maxDepth)], 'too_deep')
      return
    }
    const check = this.#options.messages?.get(frame.type)
    if (check === undefined) {
      if (this.#options.strictMessages) {
        this.#refuse(connection, username, frame, [unregisteredTypeError], 'unregistered_type')
        return
      }
    } else {
      const errors = payloadErrors(check, frame.payload)
      if (errors !== undefined) {
        this.#refuse(connection, username, frame, errors, 'invalid_payload')
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
  #refuse (connection: Connection, username: string, frame: Frame, errors: LinkMessageError[], reason: InvalidMessageReason): void {
    this.counts.invalidMessage(this.#options.messages?.has(frame.type) === true ? frame.type : 'other', reason)
    const unlink = this.#options.invalidMessage === 'unlink'
    connection.log.warn({ username, type: frame.type, error: errors[0] },
      unlink ? 'user sent an invalid message and is unlinked' : 'user sent an invalid message; it is dropped')
    this.emit('invalidMessage', username, frame, errors)
    if (unlink && connection.username === username) {
      this.#unlinkConnection(connection, 'invalid_message') // unless an invalidMessage listener unlinked or kicked the user already
    }
  }

  #handleUnlinked (connection: Connection, frame: Frame | undefined): void {
    if (frame === undefined) {
      this.#reject(connection, 'invalid message', 'invalid_message')
      return
    }
    if (frame.type !== linkType) {
      this.#reject(connection, 'unlinked connection', 'unlinked_connection')
      return
    }
    const payload = frame.payload
    if (!isLinkPayload(payload)) {
      this.#reject(connection, 'invalid link request', 'invalid_link_request')
      return
    }
    if (!this.#versions.accepts(payload.version)) {
      this.#reject(connection, this.#versions.rejectReason(payload.version), 'version_mismatch')
      return
    }
    if (!this.#isValidUsername(payload.username)) {
      this.#reject(connection, 'invalid username', 'invalid_username')
      return
    }
    connection.linkInFlight = true
    const attempt = ++connection.linkRequests
    this.#link(connection, payload.username, payload.auth).finally(() => {
      // A link that was applied ended the wait already, and a frame handled since may have started another link.
      if (connection.linkRequests === attempt && connection.linkInFlight) {
        connection.linkInFlight = false
        this.#drain(connection)
      }
    })
  }

  /** Handles the frames that waited for a link decision, in arrival order, until another link is in flight. */
  #drain (connection: Connection): void {
    while (!connection.isWaiting && connection.queue.length > 0) {
      const { frame, bytes } = connection.queue.shift() as QueuedFrame
      connection.queuedBytes -= bytes
      this.#handle(connection, frame)
    }
  }

  async #link (connection: Connection, username: string, auth: string | undefined): Promise<void> {
    const requested = performance.now()
    const claim = await this.#backend.claim(username, this.#admission)
    if (!claim.claimed) {
      this.#refuseLink(connection, username, claim.refusal)
      return
    }
    if (!connection.isOpen || this.#status !== 'listening') {
      this.#backend.release(username, claim.token) // it closed while a shared backend answered the claim
      return
    }
    const info: AuthenticateInfo = { isNewUser: claim.isNewUser, auth, request: connection.request, isLinked: claim.isLinked }
    /** Which link of the connection this authentication made, once it made one. */
    const made: { link?: number } = {}
    const authentication = authenticate(
      this.rawListeners('authenticate') as unknown as AuthenticateListener[],
      username,
      info,
      this.#options.authTimeoutMilliseconds,
      {
        onError: err => connection.log.warn({ err, username }, 'an authenticate listener or handler failed; the link is rejected'),
        onLate: call => this.#lateAuthentication(connection, username, call, made.link)
      }
    )
    connection.cancelAuthentication = authentication.cancel
    const authenticating = performance.now()
    let reason = await authentication.decision
    connection.cancelAuthentication = undefined
    this.#observer?.authenticated((performance.now() - authenticating) / 1000)
    const data = reason === undefined ? this.#encodeUserData(connection, username, authentication.attached()) : undefined
    if (data === kUnencodable) {
      reason = authenticationFailedReason
    }
    if (!connection.isOpen || this.#status !== 'listening' || reason !== undefined) {
      this.#backend.release(username, claim.token)
      if (reason !== undefined && connection.isOpen && this.#status === 'listening') {
        this.#reject(connection, reason, authenticationLabel(reason))
      }
      return
    }
    // The link is applied (accepted, attached, told who is there) when the backend hands it back, which the
    // in-memory backend does before it returns.
    this.#linking.set(claim.token, { connection, made })
    const early = !this.#backend.isLocal && this.#options.sessions.replay !== undefined
    if (early) {
      this.#early.set(username, [])
    }
    const linked = this.#backend.link(username, claim.token, this.#admission, data as string | undefined)
    const result = isThenable(linked) ? await linked : linked
    if (early) {
      this.#early.delete(username) // refused (what arrived for it stays in its mailbox), or applied already
    }
    if (!result.linked) {
      this.#linking.delete(claim.token)
      if (connection.isOpen) {
        this.#refuseLink(connection, username, result.refusal)
      }
      return
    }
    this.#observer?.linked((performance.now() - requested) / 1000)
  }

  /**
   * The JSON of the data an authentication attached; data that is not JSON, or larger than `maxPayload`,
   * fails the link (it would be sent to every node, and kept in Redis).
   */
  #encodeUserData (connection: Connection, username: string, attached: { data: unknown } | undefined): string | undefined | typeof kUnencodable {
    if (attached === undefined) {
      return undefined
    }
    let text: string | undefined
    let err: unknown
    try {
      text = JSON.stringify(attached.data) // undefined for a function or undefined
    } catch (caught) {
      err = caught // a BigInt, a cycle, a toJSON that throws
    }
    if (text === undefined) {
      connection.log.error({ err, username }, 'the data attached to the link is not JSON; the link is rejected')
      return kUnencodable
    }
    const bytes = Buffer.byteLength(text) // bytes, not characters: what Redis, the log and the frames hold
    if (bytes > this.#options.maxPayload) {
      connection.log.error({ username, bytes }, 'the data attached to the link is larger than maxPayload; the link is rejected')
      return kUnencodable
    }
    return text
  }

  /** Answers a link request that the backend refused. */
  #refuseLink (connection: Connection, username: string, refusal: Refusal): void {
    if (refusal === 'already-linked') {
      // Not counted towards maxLinkAttempts: a client whose old connection is not yet known to be dead retries this.
      this.#reject(connection, `user ${username} is already linked to a connection`, 'already_linked', false)
    } else {
      const [reason, label] = refusalReasons[refusal]
      this.#reject(connection, reason, label)
    }
  }

  /**
   * `reject` or `markAsync` was called after the decision: the application meant to decide later than it
   * did. The link the authentication made (`linkedAs`, set only when it was accepted and committed) is
   * undone (fail closed), if the connection is still on it.
   */
  #lateAuthentication (connection: Connection, username: string, call: string, linkedAs: number | undefined): void {
    if (call === 'attach') {
      connection.log.error({ username, call }, 'attach was called after the link was decided; it is ignored')
      return
    }
    const isOnThatLink = linkedAs !== undefined && connection.username === username && connection.links === linkedAs
    connection.log.error({ username, call }, isOnThatLink
      ? `${call} was called after the link was accepted; the user is unlinked`
      : `${call} was called after the link was decided; it is ignored`)
    if (isOnThatLink) {
      this.#unlinkConnection(connection, 'server')
    }
  }

  #disconnect (connection: Connection): void {
    this.#connections.delete(connection)
    this.#drop(connection, 'client')
  }

  /** Forgets everything a connection that is closing or closed was doing: its frames, its link request, its user. */
  #drop (connection: Connection, cause: UnlinkCause): void {
    this.#forgetQueue(connection) // nothing a closing connection sent is handled any more
    connection.cancelAuthentication?.()
    if (connection.username !== undefined && connection.unlinksInFlight === 0) {
      if (!this.#backend.isLocal) {
        // It closes before a shared backend answers: it is told now, as it is by the in-memory backend.
        connection.send(unlinkedFrame(connection.username))
      }
      this.#unlinkConnection(connection, cause)
    }
    this.#stopLinkTimer(connection)
  }

  /**
   * Asks the backend to end the link of `connection`, fenced by its generation: if the link ended
   * already, nothing happens. A shared backend answers later; meanwhile the frames of the connection
   * wait, as behind a link request, so that none is handled as its user's after it asked to unlink.
   */
  #unlinkConnection (connection: Connection, cause: UnlinkCause): void {
    const username = connection.username as string
    const commit = this.#backend.unlink(username, connection.generation, cause)
    this.#holdFrames(connection, commit.then(undefined, (err: unknown) => {
      connection.log.warn({ err, username }, 'the unlink of a connection could not be committed')
    }))
  }

  /** The user of `connection` leaves, as it asked. */
  #leaveConnection (connection: Connection): void {
    const username = connection.username as string
    this.#holdFrames(connection, this.#commit(this.#backend.leave(username, 'client'), 'leave', username).then(undefined, () => {})) // #commit logged it
  }

  /**
   * Keeps the frames of `connection` waiting until a change it asked for (`settled`, which never rejects)
   * is committed to a shared backend; the in-memory backend applied it already.
   */
  #holdFrames (connection: Connection, settled: Promise<void>): void {
    if (!this.#backend.isLocal) {
      connection.unlinksInFlight++
      settled.finally(() => {
        connection.unlinksInFlight--
        this.#drain(connection)
      })
    }
  }

  /** Closes a connection that broke a rule; its user is unlinked at once, not when the closing handshake ends. */
  #closeConnection (connection: Connection, code: number, reason: string): void {
    if (!connection.isOpen) {
      return
    }
    connection.log.warn({ username: connection.username, code, reason }, 'connection closed')
    this.#drop(connection, 'limit')
    connection.close(code, reason, this.#options.closeGraceMilliseconds) // never rejects
  }

  /** A client that does not read what it is sent: it is cut off, so that its buffer cannot grow without bound. */
  #cutSlowConsumer (connection: Connection): void {
    this.counts.slowConsumers++
    connection.log.warn({ username: connection.username, bufferedBytes: connection.socket.bufferedAmount }, 'slow consumer terminated')
    connection.socket.terminate() // first, so that its own unlink is not written to it: it would be cut off again
    this.#drop(connection, 'limit')
  }

  /** A connection that did not answer the last heartbeat ping: its user is unlinked, and its socket terminated. */
  #closeSilent (connection: Connection): void {
    connection.log.info({ username: connection.username }, 'connection did not answer the heartbeat and is terminated')
    connection.socket.terminate() // first, so that nothing more is sent to it, and no link timer starts for it
    this.#drop(connection, 'heartbeat')
  }

  /** ws found a protocol violation (a frame beyond maxPayload, invalid UTF-8, ...) and is closing the socket itself. */
  #socketError (connection: Connection, err: Error): void {
    connection.log.warn({ err, username: connection.username }, 'websocket error')
    this.#drop(connection, 'client')
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

  /**
   * The coded error of a refused commit, for the method that asked; the promise is marked as handled (an
   * application that ignores it does not crash the process) and its failure logged.
   */
  #commit (commit: Commit, action: string, username: string): Promise<void> {
    if (this.#backend.isLocal) {
      return commit // settled already: the in-memory backend applies a change before it returns
    }
    const coded = commit.then(undefined, (err: unknown) => {
      throw this.#codedError(err, action, username)
    })
    coded.then(undefined, (err: unknown) => this.#log.warn({ err, username }, `could not ${action}`))
    return coded
  }

  #codedError (err: unknown, action: string, username: string): Error {
    switch ((err as CommitRefused).refusal) {
      case 'exists':
        return new FST_LINK_USER_EXISTS(username)
      case 'full':
        return new FST_LINK_SERVER_FULL(username, this.#options.maxUsers)
      case 'unknown':
        return new FST_LINK_UNKNOWN_USER(action, username)
      case 'not-linked':
        return new FST_LINK_USER_NOT_LINKED(action, username)
      default:
        return new FST_LINK_CLUSTER_UNAVAILABLE(action, (err as Error).message)
    }
  }

  // Applying the changes of the user space, made here or on any other node, in the one order of the
  // user space. Only the change's origin emits its events.

  #apply (change: Change): boolean {
    if (!this.#fits(change)) {
      return false
    }
    switch (change.op) {
      case 'join':
        this.#applyJoin(change.username, change.order, undefined)
        this.#emitted(change, 'join')
        break
      case 'link': {
        const current = this.#users.get(change.username)?.link
        if (current !== undefined) {
          // A link the backend applies without its records (a reload covered them) took over the user's link,
          // which the record before it unlinked.
          this.#apply({ op: 'unlink', username: change.username, origin: change.origin, generation: current.generation, cause: 'takeover' })
        }
        const linked = this.#applyLink(change)
        this.#emitChanges()
        if (linked !== undefined) {
          // The frames it sent after its link request are its user's now, and are handled in order after the link event.
          linked.linkInFlight = false
          this.#drain(linked)
        }
        break
      }
      case 'unlink':
        this.#applyUnlink(change.username, change.cause === 'takeover')
        if (this.#emitted(change, 'unlink')) {
          this.counts.unlinks[change.cause]++
        }
        break
      case 'leave':
        this.#applyLeave(change)
        break
    }
    this.#emitChanges()
    return true
  }

  /** Whether a change fits the mirror: a record that does not (only a foreign writer makes one) is not applied. */
  #fits (change: Change): boolean {
    const user = this.#users.get(change.username)
    switch (change.op) {
      case 'join': return user === undefined
      case 'unlink': return user?.link !== undefined
      case 'leave': return user !== undefined
      default: return true
    }
  }

  /** Queues the event of a change this node made; answers whether it did (a change is counted by its node). */
  #emitted (change: Change, event: ChangeEvent): boolean {
    if (change.origin === this.#backend.nodeId) {
      this.#changed(event, change.username)
      return true
    }
    return false
  }

  /** Creates `username`; the connection linking it, if it is this node's, does not hear of the join: it is told who is there. */
  #applyJoin (username: string, order: number, linking: Connection | undefined): MirroredUser {
    const user = this.#users.join(username, order)
    ;(linking?.log ?? this.#log).info({ username }, 'user joined')
    this.#local.broadcast(user.joined, linking)
    return user
  }

  /** Applies a link; returns the connection of this node it linked, if any. */
  #applyLink (change: LinkChange): Connection | undefined {
    const username = change.username
    const linking = change.node === this.#backend.nodeId ? this.#linking.get(change.token) : undefined
    const connection = linking?.connection
    if (connection !== undefined) {
      this.#linking.delete(change.token)
      connection.send(acceptedFrame)
    }
    const user = this.#users.get(username) ?? this.#applyJoin(username, change.generation, connection)
    this.#users.setLink(user, { node: change.node, generation: change.generation })
    user.data = change.data
    const replay = change.replay
    if (connection !== undefined) {
      this.#local.attach(username, connection, change.generation, replay?.head ?? 0)
      ;(linking as Linking).made.link = connection.links
      connection.rejections = 0
      this.#stopLinkTimer(connection)
      this.#sendUserList(connection)
      // What it missed, after the user list and before anything new, which another node may have sent already.
      for (const message of replay?.messages ?? []) {
        connection.send(message)
      }
      const early = this.#early.get(username) ?? []
      this.#early.delete(username)
      for (let i = 0; i < early.length; i += 2) {
        this.#deliver(username, early[i] as EncodedFrame, early[i + 1] as number)
      }
    }
    ;(connection?.log ?? this.#log).info({ username }, 'user linked')
    this.#local.broadcast(user.linked, connection)
    if (change.isNewUser) {
      this.#emitted(change, 'join')
    }
    if (change.origin === this.#backend.nodeId) {
      this.counts.links++
      // Only the node that made the link emits its event: the others need not parse its data.
      this.#changed('link', username, {
        data: change.data === undefined ? undefined : JSON.parse(change.data),
        replay: replay === undefined ? undefined : { replayed: replay.messages.length, lost: replay.lost }
      })
    }
    if (connection !== undefined && !connection.isOpen) {
      this.#unlinkConnection(connection, 'client') // it closed while its link was being committed
    } else if (connection === undefined && change.node === this.#backend.nodeId) {
      this.#unlinkOrphan(username, change.generation)
    }
    return connection
  }

  /**
   * A link committed for this node that no connection here waits for: the reply of its commit was lost (a cut, a
   * failover), so its connection was refused, and the link committed all the same. No user stays linked to no
   * connection: it is unlinked, fenced by its generation (a link made since is not touched).
   */
  #unlinkOrphan (username: string, generation: number): void {
    this.#log.warn({ username }, 'a link whose commit went unanswered was committed after all; its connection is gone, so it is unlinked')
    this.#commit(this.#backend.unlink(username, generation, 'client'), 'unlink a link with no connection', username) // logged if it fails
  }

  /**
   * Tells a connection that just linked who is there: `krmx/joined` for every user, and `krmx/linked` for
   * each linked one, in join order. Without compression it is one write of the mirror's user list, a buffer
   * shared by every link until a user in it changes (`UserSpace.list`): a write per frame, 2n of them for n
   * users, was most of what a link cost in the storm scenario of `npm run bench`, and a copy of the list per
   * link most of the memory a link storm left behind.
   */
  #sendUserList (connection: Connection): void {
    if (!connection.isDirect) {
      for (const [, user] of this.#users.entries()) {
        connection.send(user.joined)
        if (user.link !== undefined) {
          connection.send(user.linked)
        }
      }
      return
    }
    const { bytes, frames } = this.#users.list()
    connection.sendConcatenated(bytes, frames)
  }

  /**
   * Ends the link of `username`. The backend fenced it already (an unlink names the generation it ends, and
   * changes come in the one order of the user space), so the mirror has that link.
   */
  #applyUnlink (username: string, takeover: boolean): void {
    const user = this.#users.get(username) as MirroredUser
    const frame = unlinkedFrame(username)
    const connection = this.#local.get(username)
    if (this.#sayingGoodbye) {
      connection?.send(frame)
    } else {
      this.#local.broadcast(frame, undefined)
    }
    this.#users.setLink(user, undefined)
    if (connection !== undefined) {
      this.#local.detach(username)
      if (takeover) {
        connection.log.info({ username }, 'user linked from another connection; its connection is closed')
        this.#forgetQueue(connection)
        connection.close(closeCodeTakenOver, 'linked from another connection', this.#options.closeGraceMilliseconds) // never rejects
      } else if (connection.isOpen) {
        this.#startLinkTimer(connection)
      }
    }
    ;(connection?.log ?? this.#log).info({ username }, 'user unlinked')
  }

  #applyLeave (change: LeaveChange): void {
    const username = change.username
    const user = this.#users.get(username) as MirroredUser
    const connection = this.#local.get(username)
    if (user.link !== undefined) {
      this.#applyUnlink(username, false)
      if (this.#emitted(change, 'unlink')) {
        this.counts.unlinks[unlinkCauseOfLeave[change.cause]]++
      }
    }
    const frame = leftFrame(username)
    connection?.send(frame)
    this.#users.leave(username)
    if (!this.#sayingGoodbye) {
      this.#local.broadcast(frame, undefined)
    }
    ;(connection?.log ?? this.#log).info({ username }, change.cause === 'window' ? 'user left: its reconnection window ended' : 'user left')
    if (this.#emitted(change, 'leave')) {
      this.counts.leaves[change.cause]++
    }
  }

  /**
   * Sets the mirror to a snapshot of the user space and tells this node's connections the differences,
   * without events: the changes that made them were made, and their events emitted, elsewhere or before.
   */
  #reset (snapshot: SnapshotUser[], keepMissing: boolean): void {
    const present = new Set<string>()
    for (const { username } of snapshot) {
      present.add(username)
    }
    for (const username of keepMissing ? [] : this.#users.usernames()) {
      if (!present.has(username)) {
        this.#applyLeave({ op: 'leave', username, origin: '', cause: 'close' })
      }
    }
    for (const { username, order, link, data } of snapshot) {
      const user = this.#users.get(username) ?? this.#applyJoin(username, order, undefined)
      user.data = data
      if (user.link !== undefined && (link?.node !== user.link.node || link.generation !== user.link.generation)) {
        this.#applyUnlink(username, false)
      }
      if (link !== undefined && user.link === undefined) {
        this.#users.setLink(user, link)
        this.#local.broadcast(user.linked, undefined)
      }
    }
    this.#users.sort()
  }

  /**
   * A message for `username`, sent here by the backend: to its connection, unless the connection had it in its
   * replay; one that comes before the link it is for is applied waits for it.
   */
  #deliver (username: string, frame: EncodedFrame, number: number): void {
    const connection = this.#local.get(username)
    if (connection === undefined) {
      this.#early.get(username)?.push(frame, number)
      return
    }
    if (number === 0) {
      connection.send(frame)
    } else if (number > connection.sent) {
      connection.sent = number
      connection.send(frame)
    }
  }

  /** A pong: the connection is alive, and with replay on it confirms the messages its ping named. */
  #pong (connection: Connection, data: Buffer): void {
    connection.isAlive = true
    const number = connection.sent === 0 ? undefined : connection.confirmedBy(data)
    if (number !== undefined) {
      this.#backend.confirm(connection.username as string, connection.generation as number, number)
    }
  }

  #logListenerError (err: unknown, event: string | symbol, type?: string): void {
    this.#log.error({ err, event, type }, type === undefined ? 'a link server listener threw' : 'a message handler threw')
  }

  /** Answers a link request with `krmx/rejected`; one that `counts` brings the connection closer to `maxLinkAttempts`. */
  #reject (connection: Connection, reason: string, label: RejectionLabel, counts = true): void {
    this.counts.rejections[label]++
    connection.log.debug({ reason }, 'link request rejected')
    connection.send(rejectedFrame(reason))
    if (counts && ++connection.rejections >= this.#options.maxLinkAttempts) {
      this.#closeConnection(connection, closeCodePolicyViolation, 'too many rejected link requests')
    }
  }

  // Checks.

  /** Whether `maxUsers` users exist, so that no new one may be created. */
  #isFull (): boolean {
    return this.#users.size >= this.#options.maxUsers
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

  /** Where `username` is linked, as this node's mirror knows it; a user that does not exist or is not linked is a misuse. */
  #linkOf (action: string, username: string): UserLink {
    const user = this.#users.get(username)
    if (user === undefined) {
      throw new FST_LINK_UNKNOWN_USER(action, username)
    }
    if (user.link === undefined) {
      throw new FST_LINK_USER_NOT_LINKED(action, username)
    }
    return user.link
  }
}
