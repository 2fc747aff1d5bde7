import { EventEmitter } from 'node:events'
import type { AddressInfo } from 'node:net'
import type { FastifyBaseLogger, FastifyReply, FastifyRequest, HookHandlerDoneFunction } from 'fastify'
import type { WebSocket } from 'ws'
import type {
  AsyncApiDocument,
  LinkMessage,
  LinkSchemas,
  LinkServer,
  LinkServerStats,
  LinkServerStatus,
  LinkUser,
  LinkUserInfo,
  MessageHandler
} from '../types/index.js'
import { buildAsyncApi } from './asyncapi.js'
import type { Backend } from './backend/backend.js'
import { Counts } from './counts.js'
import { FST_LINK_INVALID_ROOM, FST_LINK_ROOMS_OFF } from './errors.js'
import { Events } from './events.js'
import { Lifecycle } from './lifecycle.js'
import { VersionCheck } from './link/version.js'
import { MessageRouter } from './messages/router.js'
import type { LinkObserver, MetricsSource } from './metrics.js'
import type { ResolvedOptions } from './options/resolve.js'
import type { Parts } from './parts.js'
import type { Room } from './rooms/room.js'
import { RoomHandleImpl } from './rooms/room-handle.js'
import { Rooms } from './rooms/rooms.js'
import { Gateway } from './transport/gateway.js'

/**
 * The implementation behind `fastify.linkServer`: the public API, whose arguments it checks, over the modules
 * that do the work (see docs/architecture.md). It keeps no state of its own but the modules.
 */
export class LinkServerImpl extends EventEmitter implements LinkServer<LinkSchemas> {
  /** What this node counts for its metrics, always. */
  readonly counts = new Counts()
  readonly #parts: Parts
  /** The full URL path of the route, for the log line of `listening` and the AsyncAPI document. */
  readonly #address: string
  #asyncapi: AsyncApiDocument | undefined

  constructor (options: ResolvedOptions, log: FastifyBaseLogger, address: string, backend: Backend) {
    super()
    this.#address = address
    const admission = { acceptNewUsers: options.acceptNewUsers, maxUsers: options.maxUsers, acceptNewRooms: options.acceptNewRooms, maxRooms: options.maxRooms }
    const parts = { options, log, backend, counts: this.counts, observer: undefined, admission } as Partial<Parts> as Parts
    Object.assign(parts, {
      lifecycle: new Lifecycle(),
      events: new Events(this, log),
      gateway: new Gateway(parts),
      router: new MessageRouter(parts),
      rooms: new Rooms(parts),
      versions: new VersionCheck(options.acceptedVersions)
    })
    this.#parts = parts
    if (!options.rooms) {
      parts.rooms.open('') // the endpoint is one room, for the server's whole life
    }
  }

  /**
   * Calls every listener of `event`, even when one throws: a throwing listener is logged and never stops the
   * others, nor the protocol flow that emitted the event.
   */
  override emit (event: string | symbol, ...args: unknown[]): boolean {
    return this.#parts.events.emit(event, args)
  }

  /** Turns the histograms of the metrics on (before `ready`, so that the backend's round trips are observed too). */
  observeWith (observer: LinkObserver): void {
    this.#parts.observer = observer
  }

  /** What the metrics read when scraped. */
  readonly metricsSource: MetricsSource = {
    counts: this.counts,
    framesSent: () => this.#parts.gateway.framesSent,
    users: () => this.#parts.rooms.counts().users,
    linkedUsers: () => this.#parts.rooms.counts().linkedHere,
    rooms: () => this.#parts.rooms.size,
    connections: () => this.#parts.gateway.size,
    nodes: () => this.#parts.backend.nodes,
    refusedInputs: () => this.#parts.backend.refusedInputs
  }

  /** Why the link server does not take links now, for the readiness endpoint; `undefined` when it does. */
  notReadyReason (): string | undefined {
    return this.#parts.lifecycle.notReadyReason(this.#parts.backend.isAvailable)
  }

  // Lifecycle, driven by the Fastify hooks in index.ts.

  /** Starts the backend (connects to the cluster's Redis, and loads its user space), then takes links. */
  async ready (): Promise<void> {
    const { backend, lifecycle, gateway, rooms } = this.#parts
    await backend.start(rooms.host)
    lifecycle.set('listening')
    gateway.start()
    rooms.start()
  }

  /** The server is bound to `address`; the log names the URL clients connect to. */
  listening (address: AddressInfo): void {
    const host = address.family === 'IPv6' ? `[${address.address}]` : address.address
    this.#parts.log.info({ port: address.port, url: `ws://${host}:${address.port}${this.#address}` }, 'link server listening')
    this.emit('listen', address.port)
  }

  /**
   * The node's users are told goodbye (the in-memory backend makes every user leave, in join order; in a cluster
   * the user space outlives this node, and its users are unlinked, so that they can link again on another node),
   * each connection hearing only of its own user; then every socket is closed with 1001.
   */
  async close (otherSockets: Iterable<WebSocket> = []): Promise<void> {
    const { lifecycle, gateway, rooms, backend } = this.#parts
    lifecycle.set('closing')
    gateway.stop()
    rooms.stop()
    await backend.closeNode()
    await gateway.closeAll(otherSockets)
    await backend.stop()
  }

  closed (): void {
    this.#parts.lifecycle.set('closed')
    this.#parts.log.info('link server closed')
    this.emit('close')
    this.removeAllListeners()
    this.#parts.router.clear()
  }

  /** Takes a new WebSocket of the route. */
  accept (socket: WebSocket, request: FastifyRequest): void {
    this.#parts.gateway.accept(socket, request)
  }

  /** The route's `preHandler`: refuses an upgrade the server does not take. */
  admit (request: FastifyRequest, reply: FastifyReply, done: HookHandlerDoneFunction): void {
    this.#parts.gateway.admit(request, reply, done)
  }

  // The user API.

  handle (type: string, handler: MessageHandler<never, never>): this {
    this.#parts.router.add(type, handler)
    return this
  }

  typed<T extends LinkSchemas> (): LinkServer<T> {
    return this as LinkServer<LinkSchemas> as LinkServer<T>
  }

  room (name: string): RoomHandleImpl {
    const { options, rooms } = this.#parts
    if (!options.rooms) {
      if (name !== '') {
        throw new FST_LINK_ROOMS_OFF(name)
      }
      return (rooms.get('') as Room).handle
    }
    if (!rooms.isValidName(name)) {
      throw new FST_LINK_INVALID_ROOM(String(name))
    }
    return rooms.get(name)?.handle ?? new RoomHandleImpl(this.#parts, name)
  }

  async getRooms (): Promise<string[]> {
    return await this.#parts.rooms.names()
  }

  // With rooms off, the user API of the endpoint's one room; with rooms on, a misuse that names room(name).

  send (username: string, message: LinkMessage): void {
    this.#parts.rooms.only('send a message', 'send').handle.send(username, message)
  }

  broadcast (message: LinkMessage, skipUsername?: string): void {
    this.#parts.rooms.only('broadcast a message', 'broadcast').handle.broadcast(message, skipUsername)
  }

  join (username: string): Promise<void> {
    return this.#parts.rooms.only('join a user', 'join').handle.join(username)
  }

  unlink (username: string): Promise<void> {
    return this.#parts.rooms.only('unlink a user', 'unlink').handle.unlink(username)
  }

  kick (username: string): Promise<void> {
    return this.#parts.rooms.only('kick a user', 'kick').handle.kick(username)
  }

  getUsers (): LinkUser[] {
    return this.#parts.rooms.only('list the users', 'getUsers').handle.getUsers()
  }

  getUser (username: string): LinkUserInfo | undefined {
    return this.#parts.rooms.only('get a user', 'getUser').handle.getUser(username)
  }

  isLinked (username: string): boolean {
    return this.#parts.rooms.only('ask whether a user is linked', 'isLinked').handle.isLinked(username)
  }

  getStatus (): LinkServerStatus {
    return this.#parts.lifecycle.status
  }

  getStats (): LinkServerStats {
    const { rooms, users, linkedHere } = this.#parts.rooms.counts()
    return {
      connections: this.#parts.gateway.size,
      users,
      rooms,
      linkedUsers: linkedHere,
      invalidMessages: this.counts.invalidMessageCount()
    }
  }

  asyncapi (): AsyncApiDocument {
    const options = this.#parts.options
    this.#asyncapi ??= buildAsyncApi({
      address: this.#address,
      info: options.asyncapiInfo,
      messages: options.messages,
      serverMessages: options.serverMessages,
      strictMessages: options.strictMessages
    })
    return structuredClone(this.#asyncapi)
  }
}
