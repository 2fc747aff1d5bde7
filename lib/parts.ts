import type { FastifyBaseLogger } from 'fastify'
import type { Admission, Backend } from './backend/backend.js'
import type { Counts } from './counts.js'
import type { Events } from './events.js'
import type { Lifecycle } from './lifecycle.js'
import type { VersionCheck } from './link/version.js'
import type { MessageRouter } from './messages/router.js'
import type { LinkObserver } from './metrics.js'
import type { ResolvedOptions } from './options/resolve.js'
import type { Rooms } from './rooms/rooms.js'
import type { Gateway } from './transport/gateway.js'

/**
 * The modules of one link server, as each of them reaches the others: by direct calls, read when they are made
 * (so that the modules can be made in any order). Each module owns its own state; this holds none. What is per room
 * (its user space, link flow and delivery) is in its `Room` (`rooms/room.ts`).
 */
export interface Parts {
  readonly options: ResolvedOptions
  readonly log: FastifyBaseLogger
  readonly backend: Backend
  /** What this node counts for its metrics, always. */
  readonly counts: Counts
  /** With metrics on: the histograms. */
  observer: LinkObserver | undefined
  readonly lifecycle: Lifecycle
  readonly events: Events
  readonly gateway: Gateway
  readonly router: MessageRouter
  readonly rooms: Rooms
  /** The limits every claim and link is checked against: the same in every room. */
  readonly admission: Admission
  /** Which client versions may link. */
  readonly versions: VersionCheck
}
