import { performance } from 'node:perf_hooks'
import type { RoomHost } from '../backend/backend.js'
import type { ResolvedClusterOptions } from '../options/resolve.js'
import { FST_LINK_ROOM_REQUIRED } from '../errors.js'
import type { Parts } from '../parts.js'
import { askPredicate } from '../predicates.js'
import { confirmIntervalMilliseconds } from '../sessions/delivery.js'
import { confirmSent } from '../sessions/confirmations.js'
import { Room } from './room.js'

/** In a cluster, how often the rooms whose lease ended are given up. */
const releaseIntervalMilliseconds = 1_000

/**
 * The rooms this node serves, by name: a room is opened when a connection or the API needs it, and forgotten when
 * this node does nothing for it any more. With rooms off there is one, `''`, for the server's whole life.
 */
export class Rooms {
  readonly #parts: Parts
  readonly #rooms = new Map<string, Room>()
  /** How many rooms have users. */
  #existing = 0
  #confirming: NodeJS.Timeout | undefined
  /** In a cluster: gives up the rooms whose lease ended. */
  #releasing: NodeJS.Timeout | undefined

  constructor (parts: Parts) {
    this.#parts = parts
  }

  get (name: string): Room | undefined {
    return this.#rooms.get(name)
  }

  /** Whether `name` is a room name `isValidRoom` takes (one that throws or returns a promise takes none, logged). */
  isValidName (name: unknown): name is string {
    const { log, options } = this.#parts
    return typeof name === 'string' && askPredicate(log, 'isValidRoom', { room: name }, 'the room is treated as invalid', () => options.isValidRoom(name))
  }

  /** The room `name`, opened if this node does not serve it yet. */
  open (name: string): Room {
    let room = this.#rooms.get(name)
    if (room === undefined) {
      room = new Room(this.#parts, name)
      this.#rooms.set(name, room)
    }
    return room
  }

  /**
   * In a cluster: the room `name`, served by this node a lease more (its API is used, or the heartbeat
   * found it needs a node) even with no connection in it.
   */
  lease (name: string): Room {
    const room = this.open(name)
    this.#extend(room)
    if (!room.loaded) {
      room.serve().catch(() => {}) // told to whoever waits for it; tried again when next asked
    }
    return room
  }

  /**
   * A connection to `room` closed: in memory, the room is forgotten if it was the last thing this node did for it; in a
   * cluster, it is served a while more (what its connection's end committed is applied, and its user may come back).
   */
  disconnected (room: Room): void {
    room.connections--
    if (this.#parts.backend.keepsRooms) {
      this.#extend(room)
    }
    this.release(room)
  }

  /** `room` is served a lease more with no connection in it: twice a node's timeout (only a cluster leases). */
  #extend (room: Room): void {
    const lease = 2 * (this.#parts.options.cluster as ResolvedClusterOptions).nodeTimeoutMilliseconds
    room.servedUntil = Math.max(room.servedUntil, performance.now() + lease)
  }

  /** What the backend asks of the rooms: serve the rooms its heartbeat found need a node; the round trips, with metrics on. */
  readonly host: RoomHost = {
    serve: names => {
      for (const name of names) {
        if (this.isValidName(name)) { // what Redis holds is input
          this.lease(name)
        }
      }
    },
    roundTrip: (script, seconds) => this.#parts.observer?.roundTrip?.(script, seconds)
  }

  /** Forgets `room` if this node does nothing for it any more (never the one room of rooms off). */
  release (room: Room): void {
    if (this.#parts.options.rooms && room.isIdle && this.#rooms.get(room.name) === room) {
      this.#rooms.delete(room.name)
      this.#parts.backend.close(room.name)
    }
  }

  /** With rooms off, the endpoint's one room; with rooms on, the user API is per room: `action` on `linkServer` is a misuse. */
  only (action: string, method: string): Room {
    if (this.#parts.options.rooms) {
      throw new FST_LINK_ROOM_REQUIRED(action, method)
    }
    return this.#rooms.get('') as Room
  }

  /** The names of the rooms that exist (have a user), sorted: in a cluster, in the whole cluster. */
  async names (): Promise<string[]> {
    const { backend } = this.#parts
    if (backend.roomNames !== undefined && this.#parts.options.rooms) {
      return await backend.roomNames()
    }
    const names: string[] = []
    for (const room of this.#rooms.values()) {
      if (room.space.size > 0 || !this.#parts.options.rooms) {
        names.push(room.name)
      }
    }
    return names.sort()
  }

  /** A room's first user joined (`true`), or its last one left. */
  occupied (occupied: boolean): void {
    this.#existing += occupied ? 1 : -1
  }

  /** How many rooms exist (1 with rooms off): counted as they start and end, not by looking at each. */
  get size (): number {
    return this.#parts.options.rooms ? this.#existing : 1
  }

  /** How many rooms exist, how many users are in them, and how many of those are linked here. */
  counts (): { rooms: number, users: number, linkedHere: number } {
    const counts = { rooms: this.size, users: 0, linkedHere: 0 }
    for (const room of this.#rooms.values()) {
      counts.users += room.space.size
      counts.linkedHere += room.space.linkedHere
    }
    return counts
  }

  /**
   * With replay on, each linked connection that was sent messages since its last confirmation is pinged every
   * `confirmIntervalMilliseconds` to confirm them, in every room.
   */
  start (): void {
    if (this.#parts.backend.keepsRooms && this.#parts.options.rooms) {
      this.#releasing = setInterval(() => {
        for (const room of [...this.#rooms.values()]) {
          this.release(room)
        }
      }, releaseIntervalMilliseconds)
    }
    if (this.#parts.options.sessions.replay !== undefined) {
      this.#confirming = setInterval(() => {
        for (const room of this.#rooms.values()) {
          for (const link of room.space.localLinks()) {
            confirmSent(link.connection, link)
          }
        }
      }, confirmIntervalMilliseconds)
    }
  }

  stop (): void {
    clearInterval(this.#releasing)
    clearInterval(this.#confirming)
  }
}
