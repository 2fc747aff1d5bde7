import { randomUUID } from 'node:crypto'
import type { BackendSink, RoomBackend } from '../backend.js'
import { RedisBus } from './bus.js'
import { Liveness } from './liveness.js'
import { LogReader } from './log-reader.js'
import { RedisLinks } from './links.js'
import type { RedisNode, RedisParts } from './parts.js'
import { RedisSpace } from './space.js'
import { RedisStore } from './store.js'
import { Windows } from './windows.js'

/**
 * A room this node serves, in Redis: its user space's keys, log reader, links, heartbeat, windows, store and bus. Served
 * means registered in the room (its heartbeat there fences this node's links), subscribed to its log and messages, and
 * its user space loaded; with rooms on, the node's registration lists it (`served:<node>`) first, so that if this node
 * dies another sweeps its links here. Nothing of a room this node does not serve is read or kept.
 */
export class RedisRoom implements RoomBackend {
  readonly store: RedisStore
  readonly bus: RedisBus
  readonly parts: RedisParts
  /** The service of the room, made when first asked for (again after it failed). */
  #serving: Promise<void> | undefined
  #started = false
  /** Whether this node serves the room, its user space loaded. */
  loaded = false

  /** Resolves when this node finished giving up the room before (a room is served again only after). */
  readonly #after: Promise<void> | undefined

  constructor (node: RedisNode, name: string, sink: BackendSink, after?: Promise<void>) {
    this.#after = after
    const parts = { ...node, space: new RedisSpace(node.redis, name, node.nodeId), sink, served: async () => await this.serve() } as Partial<RedisParts> as RedisParts
    Object.assign(parts, {
      reader: new LogReader(parts),
      links: new RedisLinks(parts),
      liveness: new Liveness(parts),
      windows: new Windows(parts),
      store: new RedisStore(parts)
    })
    this.parts = parts
    this.store = parts.store
    this.bus = new RedisBus(parts)
  }

  /** Resolves when this node serves the room; rejects when it could not (Redis is away), and is tried again when next asked. */
  serve (): Promise<void> {
    this.#serving ??= this.#start().catch((err: unknown) => {
      this.#serving = undefined
      throw err
    })
    return this.#serving
  }

  async #start (): Promise<void> {
    const { redis, options, nodeId, liveness, reader, space, beat } = this.parts
    await this.#after
    if (beat.replaced) {
      throw new Error('another instance started with this node\'s id') // it serves the rooms now
    }
    if (options.rooms) {
      await redis.commands.serve(`${redis.prefix}:nodes`, redis.prefix, nodeId, space.name)
    }
    await this.bus.start()
    await liveness.register(randomUUID(), true)
    await reader.start()
    if (!this.#started) {
      this.#started = true
      liveness.start()
    }
    this.loaded = true
  }

  /**
   * This node stops serving the room: it leaves the room's heartbeat set, and the node's list of rooms it serves; the
   * next reconnection window that ends in the room is left to the heartbeats of the nodes. It never rejects: a step
   * Redis does not answer is left to the heartbeats (the sweep of a node, the windows of the rooms no node serves).
   */
  async stop (): Promise<void> {
    const { redis, options, nodeId, liveness, reader, windows, space } = this.parts
    if (this.#serving === undefined && !this.#started) {
      return // never served (a connection that did not link): nothing of it is in Redis
    }
    await this.#serving?.catch(() => {})
    windows.stop()
    await liveness.stop()
    this.bus.stop()
    reader.stop()
    const deadline = await redis.commands.deregister(space.seqKey, space.prefix, nodeId).then(Number, () => 0)
    if (options.rooms) {
      await redis.commands.unserve(`${redis.prefix}:nodes`, redis.prefix, nodeId, space.name, deadline).then(undefined, () => {})
    }
    reader.settle(Infinity)
    await reader.finished()
  }
}
