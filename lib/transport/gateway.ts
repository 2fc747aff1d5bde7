import { performance } from 'node:perf_hooks'
import type { FastifyReply, FastifyRequest, HookHandlerDoneFunction } from 'fastify'
import type { WebSocket } from 'ws'
import type { UnlinkCause } from '../backend/backend.js'
import { type Frame, parseFrame, unlinkedFrame } from '../frames.js'
import { unlinkConnection } from '../link/unlink.js'
import type { Parts } from '../parts.js'
import { askPredicate } from '../predicates.js'
import { closeSocket, Connection, logName } from './connection.js'
import { Heartbeat } from './heartbeat.js'
import { Inbound } from './inbound.js'
import { releaseUpgrade } from './upgrade.js'
import { WriteCoalescer } from './write-coalescer.js'

/** The close code of every socket when the server closes: the endpoint is going away. */
export const closeCodeGoingAway = 1001
/** The close code of a connection that broke a rule: link timeout, link attempts, rate limit. */
export const closeCodePolicyViolation = 1008
/** The close code of a connection that sent a frame larger than `maxPayload`. */
export const closeCodeTooBig = 1009

/** The connection of a socket, so that one set of socket listeners serves every connection. */
const kConnection = Symbol('fastify-link-server.connection')
type LinkSocket = WebSocket & { [kConnection]: Connection }

/**
 * The sockets of the route: admits upgrades, accepts sockets, reads their frames (rate limit, size, parse; frames
 * wait while their connection does), and closes connections, by every path a connection closes.
 */
export class Gateway {
  readonly #parts: Parts
  readonly #connections = new Set<Connection>()
  readonly #heartbeat: Heartbeat
  readonly #writes: WriteCoalescer
  // One listener of each kind for every socket, instead of four closures per connection.
  readonly #onMessage: (this: WebSocket, data: Buffer, isBinary: boolean) => void
  readonly #onPong: (this: WebSocket, data: Buffer) => void
  readonly #onError: (this: WebSocket, err: Error) => void
  readonly #onClose: (this: WebSocket) => void

  constructor (parts: Parts) {
    this.#parts = parts
    const { options, counts } = parts
    this.#heartbeat = new Heartbeat(options.pingIntervalMilliseconds, this.#connections, connection => this.#closeSilent(connection))
    this.#writes = new WriteCoalescer(options.maxBufferedBytes, connection => {
      counts.slowConsumers++
      this.#cutSlowConsumer(connection)
    })
    const gateway = this
    this.#onMessage = function (data, isBinary) { gateway.#receive((this as LinkSocket)[kConnection], data, isBinary) }
    this.#onPong = function (data) { gateway.#pong((this as LinkSocket)[kConnection], data) }
    this.#onError = function (err) { gateway.#socketError((this as LinkSocket)[kConnection], err) }
    this.#onClose = function () { gateway.#disconnect((this as LinkSocket)[kConnection]) }
  }

  /** The open connections. */
  get size (): number {
    return this.#connections.size
  }

  /** Frames written to sockets, for the metrics. */
  get framesSent (): number {
    return this.#writes.framesSent
  }

  /**
   * Refuses an upgrade before the WebSocket is opened (the route's `preHandler`): HTTP 403 for an origin that is
   * not allowed, HTTP 404 for a room name `isValidRoom` refuses, HTTP 503 while the server closes or when
   * `maxConnections` connections are open.
   */
  admit (request: FastifyRequest, reply: FastifyReply, done: HookHandlerDoneFunction): void {
    if (!request.ws) {
      done() // a plain GET, which @fastify/websocket answers with 404
      return
    }
    const { options, lifecycle } = this.#parts
    if (!lifecycle.isListening) {
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
    if (options.rooms && !this.#parts.rooms.isValidName((request.params as { room?: unknown }).room)) {
      request.log.info({ name: logName }, 'upgrade refused: invalid room name')
      reply.code(404).send({ statusCode: 404, code: 'FST_LINK_INVALID_ROOM', error: 'Not Found', message: 'No such room' })
      return
    }
    if (this.#connections.size >= options.maxConnections) {
      request.log.warn({ name: logName, maxConnections: options.maxConnections }, 'upgrade refused: too many connections')
      reply.code(503).send({
        statusCode: 503, code: 'FST_LINK_TOO_MANY_CONNECTIONS', error: 'Service Unavailable', message: 'Too many connections'
      })
      return
    }
    done()
  }

  #isAllowedOrigin (origin: string | undefined, request: FastifyRequest): boolean {
    const isAllowed = this.#parts.options.isAllowedOrigin
    if (isAllowed === undefined) {
      return true
    }
    return askPredicate(this.#parts.log, 'allowedOrigins', { origin }, 'the origin is refused', () => isAllowed(origin, request))
  }

  /** Takes a new WebSocket of the route. */
  accept (socket: WebSocket, request: FastifyRequest): void {
    if (!this.#parts.lifecycle.isListening) {
      socket.close(closeCodeGoingAway, 'server closing')
      return
    }
    releaseUpgrade(socket, request)
    const { options, rooms } = this.#parts
    const inbound = new Inbound(options.rateLimit?.burst ?? 0, performance.now())
    const room = rooms.open(options.rooms ? (request.params as { room: string }).room : '')
    room.connections++
    const connection = new Connection(socket, request, this.#writes, inbound, room)
    this.#connections.add(connection)
    this.startLinkTimer(connection)
    ;(socket as LinkSocket)[kConnection] = connection
    socket.on('message', this.#onMessage)
    socket.on('pong', this.#onPong)
    socket.on('error', this.#onError)
    socket.on('close', this.#onClose)
  }

  /** A pong: the connection is alive, and with replay on it confirms the messages its ping named. */
  #pong (connection: Connection, data: Buffer): void {
    this.#heartbeat.answered(connection)
    connection.room.delivery.pong(connection, data)
  }

  #receive (connection: Connection, data: Buffer, isBinary: boolean): void {
    if (!connection.isOpen) {
      return // a connection that is being closed is not listened to any more
    }
    const { options, counts } = this.#parts
    counts.framesReceived++
    const limit = options.rateLimit
    if (limit !== undefined && !connection.inbound.take(limit, performance.now())) {
      counts.rateLimited++
      this.closeConnection(connection, closeCodePolicyViolation, 'rate limit exceeded')
      return
    }
    if (data.length > options.maxPayload) {
      // Only when @fastify/websocket was registered by the application with a larger maxPayload of its own.
      this.closeConnection(connection, closeCodeTooBig, 'message too big')
      return
    }
    const frame = parseFrame(data, isBinary, options.maxDepth)
    if (connection.isWaiting) {
      if (!connection.inbound.enqueue(frame, data.length, options.maxQueuedFrames, options.maxQueuedBytes)) {
        this.closeConnection(connection, closeCodePolicyViolation, 'too many frames while linking')
      }
      return
    }
    this.#handle(connection, frame)
  }

  #handle (connection: Connection, frame: Frame | undefined): void {
    const link = connection.link
    if (link === undefined) {
      connection.room.flow.request(connection, frame)
    } else {
      this.#parts.router.route(connection, link.username, frame)
      this.#parts.events.flush()
    }
  }

  /** Handles the frames that waited, in arrival order, until the connection waits again. */
  drain (connection: Connection): void {
    const inbound = connection.inbound
    while (!connection.isWaiting && inbound.queue.length > 0) {
      this.#handle(connection, inbound.shift())
    }
  }

  /**
   * Keeps the frames of `connection` waiting until a change it asked for (`settled`, which never rejects) is
   * committed, if it was not applied at once: so that none is handled as its user's after it asked to unlink.
   */
  hold (connection: Connection, settled: Promise<void>): void {
    const inbound = connection.inbound
    inbound.holds++
    settled.finally(() => {
      inbound.holds--
      this.drain(connection)
    })
  }

  /** Closes a connection that broke a rule; its user is unlinked at once, not when the closing handshake ends. */
  closeConnection (connection: Connection, code: number, reason: string): void {
    if (!connection.isOpen) {
      return
    }
    connection.log.warn({ username: connection.link?.username, code, reason }, 'connection closed')
    this.#drop(connection, 'limit')
    connection.close(code, reason, this.#parts.options.closeGraceMilliseconds) // never rejects
  }

  /** A client that does not read what it is sent: it is cut off, so that its buffer cannot grow without bound. */
  #cutSlowConsumer (connection: Connection): void {
    connection.log.warn({ username: connection.link?.username, bufferedBytes: connection.socket.bufferedAmount }, 'slow consumer terminated')
    connection.socket.terminate() // first, so that its own unlink is not written to it: it would be cut off again
    this.#drop(connection, 'limit')
  }

  /** A connection that did not answer the last heartbeat ping: its user is unlinked, and its socket terminated. */
  #closeSilent (connection: Connection): void {
    connection.log.info({ username: connection.link?.username }, 'connection did not answer the heartbeat and is terminated')
    connection.socket.terminate() // first, so that nothing more is sent to it, and no link timer starts for it
    this.#drop(connection, 'heartbeat')
  }

  /** ws found a protocol violation (a frame beyond maxPayload, invalid UTF-8, ...) and is closing the socket itself. */
  #socketError (connection: Connection, err: Error): void {
    connection.log.warn({ err, username: connection.link?.username }, 'websocket error')
    this.#drop(connection, 'client')
  }

  #disconnect (connection: Connection): void {
    this.#connections.delete(connection)
    this.#drop(connection, 'client')
    this.#parts.rooms.disconnected(connection.room)
  }

  /** Forgets everything a connection that is closing or closed was doing: its frames, its link request, its user. */
  #drop (connection: Connection, cause: UnlinkCause): void {
    connection.inbound.forget() // nothing a closing connection sent is handled any more
    connection.pending?.cancel?.()
    const link = connection.link
    if (link !== undefined && connection.inbound.holds === 0) {
      unlinkConnection(connection, cause)
      if (connection.link === link) {
        // It closes before its unlink is applied (a shared backend answers later): it is told now.
        connection.send(unlinkedFrame(link.username))
      }
    }
    this.stopLinkTimer(connection)
  }

  startLinkTimer (connection: Connection): void {
    const timeout = this.#parts.options.linkTimeoutMilliseconds
    if (timeout > 0) {
      connection.inbound.linkTimer = setTimeout(() => this.closeConnection(connection, closeCodePolicyViolation, 'link timeout'), timeout)
    }
  }

  stopLinkTimer (connection: Connection): void {
    clearTimeout(connection.inbound.linkTimer)
    connection.inbound.linkTimer = undefined
  }

  start (): void {
    this.#heartbeat.start()
  }

  /** Closing: nothing starts any more (no queued frame is handled, no authentication goes on, no timer fires). */
  stop (): void {
    this.#heartbeat.stop()
    for (const connection of this.#connections) {
      connection.inbound.forget()
      connection.pending?.cancel?.()
      this.stopLinkTimer(connection)
    }
  }

  /**
   * Closes every socket with 1001: this server's, and those of the application's own WebSocket routes, when it
   * kept @fastify/websocket from closing them before the goodbye (see the README).
   */
  async closeAll (otherSockets: Iterable<WebSocket>): Promise<void> {
    const grace = this.#parts.options.closeGraceMilliseconds
    const closing = [...this.#connections].map(connection => connection.close(closeCodeGoingAway, 'server closing', grace))
    for (const socket of otherSockets) {
      if (socket.readyState === socket.OPEN) {
        closing.push(closeSocket(socket, closeCodeGoingAway, 'server closing', grace))
      }
    }
    await Promise.all(closing)
  }
}
