import type { FastifyBaseLogger } from 'fastify'
import type { ResolvedClusterOptions, Sessions } from '../../options/resolve.js'
import type { BackendSink } from '../backend.js'
import type { RedisConnections } from './connections.js'
import type { Liveness } from './liveness.js'
import type { LogReader } from './log-reader.js'
import type { RedisLinks } from './links.js'
import type { Refusals } from './refusals.js'
import type { RedisStore } from './store.js'
import type { RedisSpace } from './space.js'
import type { Windows } from './windows.js'

/** The modules of one Redis backend, as each reaches the others (read when they are called); each owns its own state. */
export interface RedisParts {
  readonly nodeId: string
  readonly options: ResolvedClusterOptions
  readonly sessions: Sessions
  readonly authTimeoutMilliseconds: number
  readonly log: FastifyBaseLogger
  readonly redis: RedisConnections
  /** The user space's keys and epoch. */
  readonly space: RedisSpace
  readonly refusals: Refusals
  /** The link server's sink, given at start. */
  sink: BackendSink
  readonly reader: LogReader
  readonly links: RedisLinks
  readonly liveness: Liveness
  readonly windows: Windows
  readonly store: RedisStore
}
