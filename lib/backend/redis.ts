import type { FastifyBaseLogger } from 'fastify'
import { FST_LINK_CLUSTER_UNAVAILABLE } from '../errors.js'
import type { ResolvedClusterOptions, Sessions } from '../options/resolve.js'
import type { Backend, BackendSink, RoomBackend, RoomHost } from './backend.js'
import { type IoredisModule, RedisConnections, withTimeout } from './redis/connections.js'
import { claimMarginMilliseconds } from './redis/links.js'
import { NodeLiveness } from './redis/node-liveness.js'
import type { RedisNode } from './redis/parts.js'
import { type RefusedInput, Refusals } from './redis/refusals.js'
import { RoomRegistry } from './redis/registry.js'
import { RedisRoom } from './redis/room.js'

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
 * The user spaces of a cluster, in Redis: every node runs the same scripts against the same keys, and reads the same
 * logs. With rooms on, each room is a user space under a hash tag of its own, and a node does Redis work only for the
 * rooms it serves (`RedisRoom`), beside its own heartbeat (`NodeLiveness`). The work is done by the modules of
 * `redis/`; see docs/architecture.md, and docs/scaling-out.md for what it guarantees.
 */
export class RedisBackend implements Backend {
  readonly nodeId: string
  readonly keepsRooms = true
  readonly #node: RedisNode
  readonly #connectTimeoutMilliseconds: number
  readonly #rooms = new Map<string, RedisRoom>()
  /** The rooms being given up, until they are. */
  readonly #stopping = new Map<string, Promise<void>>()
  /** With rooms on: the node's heartbeat. */
  readonly #liveness: NodeLiveness | undefined
  #host: RoomHost | undefined

  constructor (options: ResolvedClusterOptions, timeouts: Timeouts, log: FastifyBaseLogger, ioredis: IoredisModule) {
    this.nodeId = options.nodeId
    this.#connectTimeoutMilliseconds = timeouts.connectTimeoutMilliseconds
    const redis = new RedisConnections(options, ioredis, log)
    this.#node = {
      nodeId: options.nodeId,
      options,
      sessions: timeouts.sessions,
      authTimeoutMilliseconds: timeouts.authTimeoutMilliseconds,
      log,
      redis,
      refusals: new Refusals(log),
      registry: new RoomRegistry(redis, timeouts.authTimeoutMilliseconds + claimMarginMilliseconds),
      beat: { replaced: false }
    }
    this.#liveness = options.rooms
      ? new NodeLiveness(this.#node, {
        serve: names => this.#host?.serve(names),
        served: () => [...this.#rooms.values()].filter(room => room.loaded).map(({ parts }) => ({ name: parts.space.name, occupied: parts.sink.users.size > 0 }))
      })
      : undefined
    this.#node.beat = this.#liveness ?? { replaced: false }
  }

  /** The heartbeat that says whether the cluster answers: the node's with rooms on, else the endpoint room's. */
  get #beat (): { nodes: number, available: boolean } {
    return this.#liveness ?? (this.#rooms.get('') as RedisRoom).parts.liveness
  }

  /** How many nodes are alive, as the last heartbeat found. */
  get nodes (): number {
    return this.#beat.nodes
  }

  /** Whether Redis answered the last heartbeat. */
  get isAvailable (): boolean {
    return this.#beat.available
  }

  /** What this node refused of what it read from Redis, by kind, since it started. */
  get refusedInputs (): Readonly<Record<RefusedInput, number>> {
    return this.#node.refusals.counts
  }

  /**
   * The room `name`, served when first used (a claim, a change, the API): a connection that never links costs Redis
   * nothing. The rooms opened before the node started are served by `start`.
   */
  open (name: string, sink: BackendSink): RoomBackend {
    // A room given up a moment ago is served again once that is done, so that its steps never cross.
    const room = new RedisRoom(this.#node, name, sink, this.#stopping.get(name))
    this.#rooms.set(name, room)
    return room
  }

  close (name: string): void {
    const room = this.#rooms.get(name)
    if (room === undefined) {
      return // a room this node does not serve
    }
    this.#rooms.delete(name)
    const stopped: Promise<void> = room.stop().then(() => { // it never rejects: what fails in it is left to the heartbeats
      if (this.#stopping.get(name) === stopped) {
        this.#stopping.delete(name)
      }
    })
    this.#stopping.set(name, stopped)
  }

  /** The rooms that exist in the whole cluster, sorted. */
  async roomNames (): Promise<string[]> {
    return await this.#node.registry.names()
  }

  async start (host: RoomHost): Promise<void> {
    const { redis, log } = this.#node
    this.#host = host
    redis.roundTrip = host.roundTrip
    const clients = redis.open()
    try {
      await redis.ready(clients, this.#connectTimeoutMilliseconds)
      await this.#liveness?.register()
      await Promise.all([...this.#rooms.values()].map(async room => await room.serve()))
    } catch (err) {
      await redis.disconnect()
      throw new FST_LINK_CLUSTER_UNAVAILABLE('start the link server', (err as Error).message)
    }
    this.#liveness?.start()
    log.debug({ rooms: this.#rooms.size }, 'cluster backend started')
  }

  async closeNode (): Promise<void> {
    const { log } = this.#node
    const unlinks: Array<Promise<void>> = []
    for (const room of this.#rooms.values()) {
      const { sink, store } = room.parts
      for (const { username, generation } of sink.linkedHere()) {
        unlinks.push(store.unlink(username, generation, 'close'))
      }
    }
    await withTimeout(Promise.all(unlinks), closeNodeTimeoutMilliseconds, 'the unlinks took too long').then(undefined, (err: unknown) => {
      log.warn({ err }, 'the users of this node could not all be unlinked; the other nodes will unlink them when this node times out')
    })
  }

  async stop (): Promise<void> {
    const { redis } = this.#node
    const rooms = [...this.#rooms.values()]
    this.#rooms.clear()
    await Promise.all(rooms.map(async room => await room.stop()))
    await this.#liveness?.stop()
    redis.stopped = true
    await redis.disconnect()
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
