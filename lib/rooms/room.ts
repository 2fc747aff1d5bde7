import type { Bus, Store } from '../backend/backend.js'
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
  /** This node's open connections to the room, linked or not. */
  connections = 0

  constructor (parts: Parts, name: string) {
    this.name = name
    this.parts = parts
    this.handle = new RoomHandleImpl(parts, name)
    this.space = new UserSpace(this)
    this.flow = new LinkFlow(this)
    this.delivery = new Delivery(this)
    const { store, bus } = parts.backend.open(name, this.space.sink)
    this.store = store
    this.bus = bus
  }

  /** Whether this node does nothing for the room: no connection, no user, no link request. */
  get isIdle (): boolean {
    return this.connections === 0 && this.space.size === 0 && this.flow.isIdle
  }
}
