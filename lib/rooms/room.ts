import { performance } from 'node:perf_hooks'
import type { Bus, RoomBackend, Store } from '../backend/backend.js'
import { LinkFlow } from '../link/link-flow.js'
import type { Parts } from '../parts.js'
import { Delivery } from '../sessions/delivery.js'
import { UserSpace } from '../space/user-space.js'
import { RoomHandleImpl } from './room-handle.js'

/**
 * One room this node serves: a user space of its own (its mirror and this node's links into it), its link requests,
 * where its messages go, and its part of the backend. With rooms off, the endpoint is one room, named `''`.
 */
export class Room {
  readonly name: string
  readonly parts: Parts
  /** What the application is given: the events' last argument, `linkServer.room(name)`. */
  readonly handle: RoomHandleImpl
  readonly space: UserSpace
  readonly flow: LinkFlow
  readonly delivery: Delivery
  readonly store: Store
  readonly bus: Bus
  readonly #backend: RoomBackend
  /** This node's open connections to the room, linked or not. */
  connections = 0
  /** In a cluster: until when (`performance.now()`) this node serves the room with no connection in it (its API used it lately). */
  servedUntil = 0
  /** Resolves when this node serves the room; rejects when it cannot now (Redis is away), and is tried again when next asked. */
  readonly serve: () => Promise<void>

  constructor (parts: Parts, name: string) {
    this.name = name
    this.parts = parts
    this.handle = new RoomHandleImpl(parts, name)
    this.space = new UserSpace(this)
    this.flow = new LinkFlow(this)
    this.delivery = new Delivery(this)
    const backend = parts.backend.open(name, this.space.sink)
    this.store = backend.store
    this.bus = backend.bus
    this.#backend = backend
    this.serve = async () => await backend.serve()
  }

  /** Whether this node serves the room, its user space loaded (at once in memory; once Redis answered in a cluster). */
  get loaded (): boolean {
    return this.#backend.loaded
  }

  /**
   * Whether this node does nothing for the room: no connection, no link request, and no user (in memory, where the
   * room is this node's) or no recent use of its API (in a cluster, where the room outlives this node's serving it).
   */
  get isIdle (): boolean {
    return this.connections === 0 && this.flow.isIdle && (this.parts.backend.keepsRooms ? performance.now() >= this.servedUntil : this.space.size === 0)
  }
}
