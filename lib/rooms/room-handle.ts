import type { LinkMessage, LinkSchemas, LinkUser, LinkUserInfo, RoomHandle } from '../../types/index.js'
import {
  FST_LINK_INVALID_USERNAME,
  FST_LINK_ROOM_NOT_LOADED,
  FST_LINK_SERVER_FULL,
  FST_LINK_TOO_MANY_ROOMS,
  FST_LINK_UNKNOWN_USER,
  FST_LINK_USER_EXISTS
} from '../errors.js'
import { CommitRefused } from '../backend/backend.js'
import { whileRunning, whileRunningOrClosing } from '../lifecycle.js'
import { codedCommit } from '../link/unlink.js'
import { encodeMessage } from '../messages/outbound.js'
import type { Parts } from '../parts.js'
import { isValidUsername } from '../predicates.js'
import { inRoom } from './in-room.js'
import type { Room } from './room.js'

/**
 * The user API of one room, as the application holds it: it checks the arguments and hands the work to the room's
 * modules. It names its room and finds it when called, so that a handle kept after its room ended works on the room
 * of that name, and a handle of a room that does not exist yet costs nothing until `join` creates the room.
 */
export class RoomHandleImpl implements RoomHandle<LinkSchemas> {
  readonly name: string
  readonly #parts: Parts

  constructor (parts: Parts, name: string) {
    this.name = name
    this.#parts = parts
  }

  /**
   * The room as this node serves it: in memory, the room if it exists; in a cluster (with rooms on), the room served
   * a while more, since its API is used (a room this node does not serve yet is opened, and loads).
   */
  #room (): Room | undefined {
    const { rooms, backend, options } = this.#parts
    return backend.keepsRooms && options.rooms && this.#parts.lifecycle.isListening ? rooms.lease(this.name) : rooms.get(this.name)
  }

  /** `then` once this node serves the room, its users loaded (at once in memory), its failure to load a coded rejection. */
  #whenLoaded<T> (room: Room, action: string, username: string, then: () => Promise<T>): Promise<T> {
    const served = room.serve().catch((err: unknown) => { throw new CommitRefused('unavailable', (err as Error).message) })
    return codedCommit(this.#parts, served, action, username, this.name).then(then)
  }

  send (username: string, message: LinkMessage): void {
    const { lifecycle, options, log } = this.#parts
    lifecycle.assert('send a message', whileRunningOrClosing)
    const frame = encodeMessage('send', message, options.serverMessages)
    const room = this.#room()
    if (room === undefined) {
      throw new FST_LINK_UNKNOWN_USER('send a message', username)
    }
    if (!room.loaded) {
      // A room this node is loading: the message goes once it is loaded; what this node cannot tell now is logged.
      this.load().then(() => room.delivery.send(username, frame)).catch((err: unknown) => {
        log.warn(inRoom({ err, username }, this.name), 'a message for a room this instance was loading was not sent')
      })
      return
    }
    room.delivery.send(username, frame)
  }

  broadcast (message: LinkMessage, skipUsername?: string): void {
    const { lifecycle, options } = this.#parts
    lifecycle.assert('broadcast a message', whileRunningOrClosing)
    const frame = encodeMessage('broadcast', message, options.serverMessages)
    this.#room()?.delivery.broadcast(frame, skipUsername) // a room that does not exist has no one to tell
  }

  join (username: string): Promise<void> {
    const { lifecycle, log, options, rooms } = this.#parts
    lifecycle.assert('join a user', whileRunning)
    if (!isValidUsername(log, options.isValidUsername, username)) {
      throw new FST_LINK_INVALID_USERNAME(username)
    }
    const existing = this.#room()
    if (existing !== undefined && !existing.loaded) {
      return this.#whenLoaded(existing, 'join a user', username, async () => await this.join(username))
    }
    if (existing?.space.get(username) !== undefined) {
      throw new FST_LINK_USER_EXISTS(username)
    }
    if ((existing?.space.size ?? 0) >= options.maxUsers) {
      throw new FST_LINK_SERVER_FULL(username, options.maxUsers)
    }
    if ((existing === undefined || existing.space.size === 0) && rooms.size >= options.maxRooms) {
      throw new FST_LINK_TOO_MANY_ROOMS(this.name, options.maxRooms)
    }
    const room = rooms.open(this.name)
    const commit = codedCommit(this.#parts, room.store.join(username, this.#parts.admission), 'join a user', username, this.name)
    const release = (): void => rooms.release(room) // when the join made nothing
    commit.then(release, release)
    return commit
  }

  unlink (username: string): Promise<void> {
    this.#parts.lifecycle.assert('unlink a user', whileRunningOrClosing)
    const room = this.#existing('unlink a user', username)
    if (!room.loaded) {
      return this.#whenLoaded(room, 'unlink a user', username, async () => await this.unlink(username))
    }
    room.space.linkOf('unlink a user', username)
    return codedCommit(this.#parts, room.store.unlink(username, undefined, 'server'), 'unlink a user', username, this.name)
  }

  kick (username: string): Promise<void> {
    this.#parts.lifecycle.assert('kick a user', whileRunning)
    const room = this.#existing('kick a user', username)
    if (!room.loaded) {
      return this.#whenLoaded(room, 'kick a user', username, async () => await this.kick(username))
    }
    if (room.space.get(username) === undefined) {
      throw new FST_LINK_UNKNOWN_USER('kick a user', username)
    }
    this.#parts.log.info(inRoom({ username }, this.name), 'user kicked')
    return codedCommit(this.#parts, room.store.leave(username, 'kick'), 'kick a user', username, this.name)
  }

  /** The room, which a user of it must be in. */
  #existing (action: string, username: string): Room {
    const room = this.#room()
    if (room === undefined) {
      throw new FST_LINK_UNKNOWN_USER(action, username)
    }
    return room
  }

  /** The room, for a read: in a cluster, one this node has not loaded cannot be read (the read opens it). */
  #read (): Room | undefined {
    const room = this.#room()
    if (room !== undefined && !room.loaded) {
      throw new FST_LINK_ROOM_NOT_LOADED(this.name)
    }
    return room
  }

  getUsers (): LinkUser[] {
    return this.#read()?.space.users() ?? []
  }

  getUser (username: string): LinkUserInfo | undefined {
    const user = this.#read()?.space.get(username)
    if (user === undefined) {
      return undefined
    }
    const info: LinkUserInfo = { username, isLinked: user.link !== undefined }
    if (user.data !== undefined) {
      info.data = JSON.parse(user.data) // a copy of its own for every caller, as another node would have it
    }
    return info
  }

  isLinked (username: string): boolean {
    return this.#read()?.space.get(username)?.link !== undefined
  }

  async load (): Promise<void> {
    this.#parts.lifecycle.assert('load a room', whileRunning)
    const room = this.#room()
    if (room !== undefined) {
      await this.#whenLoaded(room, 'load a room', '', async () => {})
    }
  }
}
