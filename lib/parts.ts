import type { FastifyBaseLogger } from 'fastify'
import type { Backend } from './backend/backend.js'
import type { Counts } from './counts.js'
import type { Events } from './events.js'
import type { Lifecycle } from './lifecycle.js'
import type { LinkFlow } from './link/link-flow.js'
import type { MessageRouter } from './messages/router.js'
import type { LinkObserver } from './metrics.js'
import type { ResolvedOptions } from './options/resolve.js'
import type { Delivery } from './sessions/delivery.js'
import type { UserSpace } from './space/user-space.js'
import type { Gateway } from './transport/gateway.js'

/**
 * The modules of one link server, as each of them reaches the others: by direct calls, read when they are made
 * (so that the modules can be made in any order). Each module owns its own state; this holds none.
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
  readonly flow: LinkFlow
  readonly router: MessageRouter
  readonly space: UserSpace
  readonly delivery: Delivery
}
