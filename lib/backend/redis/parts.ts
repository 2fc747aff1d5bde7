import type { FastifyBaseLogger } from 'fastify'
import type { ResolvedClusterOptions, Sessions } from '../../options/resolve.js'
import type { BackendSink } from '../backend.js'
import type { RedisConnections } from './connections.js'
import type { Liveness } from './liveness.js'
import type { LogReader } from './log-reader.js'
import type { RedisLinks } from './links.js'
import type { Refusals } from './refusals.js'
import type { RoomRegistry } from './registry.js'
import type { RedisStore } from './store.js'
import type { RedisSpace } from './space.js'
import type { Windows } from './windows.js'

/** What the rooms of one Redis backend share: the node's options, connections, refusals and the registry of rooms. */
export interface RedisNode {
  readonly nodeId: string
  readonly options: ResolvedClusterOptions
  readonly sessions: Sessions
  readonly authTimeoutMilliseconds: number
  readonly log: FastifyBaseLogger
  readonly redis: RedisConnections
  readonly refusals: Refusals
  readonly registry: RoomRegistry
  /** The node's heartbeat (with rooms on; rooms off, each room's is the node's): another instance started with this node's id. */
  beat: { readonly replaced: boolean }
}

/**
 * The modules of one room of a Redis backend (with rooms off, the endpoint's one), as each reaches the others (read
 * when they are called); each owns its own state.
 */
export interface RedisParts extends RedisNode {
  /** The user space's keys and epoch. */
  readonly space: RedisSpace
  /** The link server's sink of the room. */
  readonly sink: BackendSink
  /** Resolves when this node serves the room (registered in it, subscribed, loaded); rejects when it could not. */
  readonly served: () => Promise<void>
  readonly reader: LogReader
  readonly links: RedisLinks
  readonly liveness: Liveness
  readonly windows: Windows
  readonly store: RedisStore
}
