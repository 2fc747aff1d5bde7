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
import { FST_LINK_INVALID_USERNAME, FST_LINK_SERVER_FULL, FST_LINK_UNKNOWN_USER, FST_LINK_USER_EXISTS } from './errors.js'
import { Events } from './events.js'
import { Lifecycle, whileRunning, whileRunningOrClosing } from './lifecycle.js'
import { LinkFlow } from './link/link-flow.js'
import { codedCommit } from './link/unlink.js'
import { encodeMessage } from './messages/outbound.js'
import { MessageRouter } from './messages/router.js'
import type { LinkObserver, MetricsSource } from './metrics.js'
import type { ResolvedOptions } from './options/resolve.js'
import type { Parts } from './parts.js'
import { isValidUsername } from './predicates.js'
import { Delivery } from './sessions/delivery.js'
import { UserSpace } from './space/user-space.js'
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
    const parts = { options, log, backend, counts: this.counts, observer: undefined } as Partial<Parts> as Parts
    Object.assign(parts, {
      lifecycle: new Lifecycle(),
      events: new Events(this, log),
      gateway: new Gateway(parts),
      flow: new LinkFlow(parts),
      router: new MessageRouter(parts),
      space: new UserSpace(parts),
      delivery: new Delivery(parts)
    })
    this.#parts = parts
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
    users: () => this.#parts.space.size,
    linkedUsers: () => this.#parts.space.linkedHere,
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
    const { backend, space, lifecycle, gateway, delivery } = this.#parts
    await backend.start(space.sink)
    lifecycle.set('listening')
    gateway.start()
    delivery.start()
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
    const { lifecycle, gateway, delivery, backend } = this.#parts
    lifecycle.set('closing')
    gateway.stop()
    delivery.stop()
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

  handle (type: string, handler: MessageHandler<never>): this {
    this.#parts.router.add(type, handler)
    return this
  }

  typed<T extends LinkSchemas> (): LinkServer<T> {
    return this as LinkServer<LinkSchemas> as LinkServer<T>
  }

  send (username: string, message: LinkMessage): void {
    this.#parts.lifecycle.assert('send a message', whileRunningOrClosing)
    this.#parts.delivery.send(username, encodeMessage('send', message, this.#parts.options.serverMessages))
  }

  broadcast (message: LinkMessage, skipUsername?: string): void {
    this.#parts.lifecycle.assert('broadcast a message', whileRunningOrClosing)
    this.#parts.delivery.broadcast(encodeMessage('broadcast', message, this.#parts.options.serverMessages), skipUsername)
  }

  join (username: string): Promise<void> {
    const { lifecycle, log, options, space, backend } = this.#parts
    lifecycle.assert('join a user', whileRunning)
    if (!isValidUsername(log, options.isValidUsername, username)) {
      throw new FST_LINK_INVALID_USERNAME(username)
    }
    if (space.get(username) !== undefined) {
      throw new FST_LINK_USER_EXISTS(username)
    }
    if (space.size >= options.maxUsers) {
      throw new FST_LINK_SERVER_FULL(username, options.maxUsers)
    }
    return codedCommit(this.#parts, backend.store.join(username, options.maxUsers), 'join a user', username)
  }

  unlink (username: string): Promise<void> {
    const { lifecycle, space, backend } = this.#parts
    lifecycle.assert('unlink a user', whileRunningOrClosing)
    space.linkOf('unlink a user', username)
    return codedCommit(this.#parts, backend.store.unlink(username, undefined, 'server'), 'unlink a user', username)
  }

  kick (username: string): Promise<void> {
    const { lifecycle, space, backend, log } = this.#parts
    lifecycle.assert('kick a user', whileRunning)
    if (space.get(username) === undefined) {
      throw new FST_LINK_UNKNOWN_USER('kick a user', username)
    }
    log.info({ username }, 'user kicked')
    return codedCommit(this.#parts, backend.store.leave(username, 'kick'), 'kick a user', username)
  }

  getUsers (): LinkUser[] {
    return this.#parts.space.users()
  }

  getUser (username: string): LinkUserInfo | undefined {
    const user = this.#parts.space.get(username)
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
    return this.#parts.space.get(username)?.link !== undefined
  }

  getStatus (): LinkServerStatus {
    return this.#parts.lifecycle.status
  }

  getStats (): LinkServerStats {
    return {
      connections: this.#parts.gateway.size,
      users: this.#parts.space.size,
      linkedUsers: this.#parts.space.linkedHere,
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
