import { randomUUID } from 'node:crypto'
import type { FastifyBaseLogger } from 'fastify'
import { FST_LINK_CLUSTER_UNAVAILABLE } from '../errors.js'
import type { ResolvedClusterOptions, Sessions } from '../options/resolve.js'
import type { Backend, BackendSink, RoomBackend } from './backend.js'
import { RedisBus } from './redis/bus.js'
import { type IoredisModule, RedisConnections, withTimeout } from './redis/connections.js'
import { RedisLinks } from './redis/links.js'
import { Liveness } from './redis/liveness.js'
import { LogReader } from './redis/log-reader.js'
import type { RedisParts } from './redis/parts.js'
import { type RefusedInput, Refusals } from './redis/refusals.js'
import { RedisSpace } from './redis/space.js'
import { RedisStore } from './redis/store.js'
import { Windows } from './redis/windows.js'

export { commandTimeoutMilliseconds, connectTimeoutFor, type IoredisModule, keyPrefixOf, maxConnectTimeoutMilliseconds } from './redis/connections.js'
export type { RefusedInput } from './redis/refusals.js'

/** How long a node that closes waits for the unlinks of its users. */
const closeNodeTimeoutMilliseconds = 3_000

/** The timeouts the backend takes from the link server's options and Fastify's. */
export interface Timeouts {
  authTimeoutMilliseconds: number
  connectTimeoutMilliseconds: number
  sessions: Sessions
}

/**
 * The user space of a cluster, in Redis: every node runs the same scripts against the same keys, and reads the
 * same log. The work is done by the modules of `redis/` (connections, store, links, log reader, liveness,
 * windows, bus, wire format); see docs/architecture.md, and docs/scaling-out.md for what it guarantees.
 */
export class RedisBackend implements Backend {
  readonly nodeId: string
  readonly store: RedisStore
  readonly bus: RedisBus
  readonly #parts: RedisParts
  readonly #connectTimeoutMilliseconds: number

  constructor (options: ResolvedClusterOptions, timeouts: Timeouts, log: FastifyBaseLogger, ioredis: IoredisModule) {
    this.nodeId = options.nodeId
    this.#connectTimeoutMilliseconds = timeouts.connectTimeoutMilliseconds
    const redis = new RedisConnections(options, ioredis)
    const refusals = new Refusals(log)
    // The endpoint's one user space, under the namespace's own hash tag.
    const space = new RedisSpace(redis, redis.prefix)
    const parts = {
      nodeId: options.nodeId, options, sessions: timeouts.sessions, authTimeoutMilliseconds: timeouts.authTimeoutMilliseconds, log, redis, space, refusals
    } as Partial<RedisParts> as RedisParts
    Object.assign(parts, {
      reader: new LogReader(parts),
      links: new RedisLinks(parts),
      liveness: new Liveness(parts),
      windows: new Windows(parts),
      store: new RedisStore(parts)
    })
    this.#parts = parts
    this.store = parts.store
    this.bus = new RedisBus(options.nodeId, redis, space, refusals, log)
  }

  /** How many nodes are alive, as the last heartbeat found. */
  get nodes (): number {
    return this.#parts.liveness.nodes
  }

  /** Whether Redis answered the last heartbeat. */
  get isAvailable (): boolean {
    return this.#parts.liveness.available
  }

  /** What this node refused of what it read from Redis, by kind, since it started. */
  get refusedInputs (): Readonly<Record<RefusedInput, number>> {
    return this.#parts.refusals.counts
  }

  /** The user space of the endpoint, its one room (rooms are not served on Redis yet: the options refuse them). */
  open (_name: string, sink: BackendSink): RoomBackend {
    this.#parts.sink = sink
    return this
  }

  close (): void {}

  async start (): Promise<void> {
    const { redis, liveness, reader, sink } = this.#parts
    redis.roundTrip = sink.roundTrip
    const clients = redis.open()
    try {
      await redis.ready(clients, this.#connectTimeoutMilliseconds)
      await this.bus.start(sink)
      await liveness.register(randomUUID(), true)
      await reader.start()
    } catch (err) {
      await redis.disconnect()
      throw new FST_LINK_CLUSTER_UNAVAILABLE('start the link server', (err as Error).message)
    }
    liveness.start()
  }

  async closeNode (): Promise<void> {
    const { sink, store, log } = this.#parts
    const unlinks = sink.linkedHere().map(async ({ username, generation }) => await store.unlink(username, generation, 'close'))
    await withTimeout(Promise.all(unlinks), closeNodeTimeoutMilliseconds, 'the unlinks took too long').then(undefined, (err: unknown) => {
      log.warn({ err }, 'the users of this node could not all be unlinked; the other nodes will unlink them when this node times out')
    })
  }

  async stop (): Promise<void> {
    const { redis, space, windows, liveness, reader, nodeId } = this.#parts
    redis.stopped = true
    windows.stop()
    await liveness.stop()
    await redis.commands.deregister(space.seqKey, space.prefix, nodeId).then(undefined, () => {})
    reader.settle(Infinity)
    await redis.disconnect()
    await reader.finished()
  }
}

/**
 * Loads ioredis (an optional peer dependency, so that only clustered applications install it) and
 * makes the backend; an application without it gets a coded error that says what to install.
 */
export async function createRedisBackend (
  options: ResolvedClusterOptions,
  timeouts: Timeouts,
  log: FastifyBaseLogger,
  load: () => Promise<unknown> = async () => import('ioredis')
): Promise<RedisBackend> {
  let ioredis: IoredisModule
  try {
    ioredis = await load() as IoredisModule
  } catch (err) {
    throw new FST_LINK_CLUSTER_UNAVAILABLE('use cluster mode', `the ioredis package could not be loaded (npm install ioredis): ${(err as Error).message}`)
  }
  return new RedisBackend(options, timeouts, log, ioredis)
}
