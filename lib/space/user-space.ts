import type { LinkUser } from '../../types/index.js'
import type { BackendSink, Change, LeaveChange, LinkChange, LinkedHere, SnapshotUser } from '../backend/backend.js'
import type { ChangeEvent } from '../events.js'
import { FST_LINK_UNKNOWN_USER, FST_LINK_USER_NOT_LINKED } from '../errors.js'
import { acceptedFrame, type EncodedFrame, leftFrame, sessionAcceptedFrame, unlinkedFrame } from '../frames.js'
import { codedCommit, unlinkConnection } from '../link/unlink.js'
import type { PendingLink } from '../link/pending-link.js'
import type { Parts } from '../parts.js'
import { inRoom } from '../rooms/in-room.js'
import type { Room } from '../rooms/room.js'
import { resume } from '../sessions/delivery.js'
import type { Connection } from '../transport/connection.js'
import { LocalLink, LocalLinks } from './local-links.js'
import { type MirroredUser, Mirror, type UserLink } from './mirror.js'

/** The close code of a connection whose user was linked from another connection (`linkConflict: 'takeover'`). */
export const closeCodeTakenOver = 4001

/** Why a linked user that leaves is unlinked, by why it leaves (one whose window ended was not linked). */
const unlinkCauseOfLeave = { client: 'client', kick: 'server', window: 'client', close: 'close' } as const

/**
 * The user space of one room: this node's mirror of it, this node's links into it, and the changes applied to them,
 * made here or on any other node, in the one order of the user space; only a change's origin emits its events. It
 * sends this node's connections the frames of every change, and fans the application's broadcasts out to them.
 */
export class UserSpace {
  readonly #parts: Parts
  readonly #room: Room
  readonly #mirror: Mirror
  readonly #local = new LocalLinks()
  /** What the backend calls: the changes of every node, snapshots, and messages sent from other nodes. */
  readonly sink: BackendSink

  constructor (room: Room) {
    const parts = room.parts
    this.#parts = parts
    this.#room = room
    this.#mirror = new Mirror(occupied => parts.rooms.occupied(occupied))
    this.sink = {
      apply: change => this.#apply(change),
      reset: (users, keepMissing) => this.#reset(users, keepMissing),
      deliver: (username, frame, number) => room.delivery.deliver(username, frame, number),
      broadcast: (frame, skip) => this.broadcast(frame, skip),
      linkedHere: () => this.#linkedHere(),
      users: this.#mirror
    }
  }

  /**
   * Logs what happened to `username`: on the logger of its connection of this node, if it has one (whose lines name
   * the room), else on the server's, naming the room (with rooms on).
   */
  #logUser (connection: Connection | undefined, username: string, message: string, level: 'info' | 'warn' = 'info'): void {
    if (connection !== undefined) {
      connection.log[level]({ username }, message)
    } else {
      this.#parts.log[level](inRoom({ username }, this.#room.name), message)
    }
  }

  /** How many users exist. */
  get size (): number {
    return this.#mirror.size
  }

  /** How many users are linked to this node. */
  get linkedHere (): number {
    return this.#local.size
  }

  get (username: string): MirroredUser | undefined {
    return this.#mirror.get(username)
  }

  users (): LinkUser[] {
    return this.#mirror.users()
  }

  /** Where `username` is linked, as this node's mirror knows it; a user that does not exist or is not linked is a misuse. */
  linkOf (action: string, username: string): UserLink {
    const user = this.#mirror.get(username)
    if (user === undefined) {
      throw new FST_LINK_UNKNOWN_USER(action, username)
    }
    if (user.link === undefined) {
      throw new FST_LINK_USER_NOT_LINKED(action, username)
    }
    return user.link
  }

  /** The link of `username` to a connection of this node, if any. */
  localLink (username: string): LocalLink | undefined {
    const link = this.#mirror.get(username)?.link
    return link instanceof LocalLink ? link : undefined
  }

  localLinks (): IterableIterator<LocalLink> {
    return this.#local.values()
  }

  /** Sends one frame to every user linked to this node but `skip`. */
  broadcast (frame: EncodedFrame, skip: string | undefined): void {
    this.#local.broadcast(frame, skip === undefined ? undefined : this.#local.get(skip))
  }

  #linkedHere (): LinkedHere[] {
    const linked: LinkedHere[] = []
    for (const { username, generation, connection, sent } of this.#local.values()) {
      if (connection.isOpen) {
        const user = this.#mirror.get(username) as MirroredUser
        linked.push({ username, generation, order: user.order, data: user.data, sent })
      }
    }
    return linked
  }

  #apply (change: Change): boolean {
    if (!this.#fits(change)) {
      return false
    }
    const { events, counts } = this.#parts
    const flow = this.#room.flow
    switch (change.op) {
      case 'join':
        this.#roomStarts(change)
        this.#applyJoin(change.username, change.order, undefined)
        this.#emitted(change, 'join')
        break
      case 'link': {
        const current = this.#mirror.get(change.username)?.link
        if (current !== undefined) {
          // A link the backend applies without its records (a reload covered them) took over the user's link,
          // which the record before it unlinked.
          this.#apply({ op: 'unlink', username: change.username, origin: change.origin, generation: current.generation, cause: 'takeover' })
        }
        const pending = this.#applyLink(change)
        events.flush()
        if (pending !== undefined) {
          // The frames it sent after its link request are its user's now, and are handled in order after the link event.
          flow.end(pending)
        }
        break
      }
      case 'unlink':
        this.#applyUnlink(change.username, change.cause === 'takeover', this.#isGoodbye(change))
        if (this.#emitted(change, 'unlink')) {
          counts.unlinks[change.cause]++
        }
        break
      case 'leave':
        this.#applyLeave(change)
        if (this.#mirror.size === 0 && this.#parts.options.rooms && change.origin === this.#parts.backend.nodeId) {
          events.changed('roomEnd', '', undefined, this.#room.handle)
        }
        break
    }
    events.flush()
    if (this.#mirror.size === 0) {
      this.#parts.rooms.release(this.#room)
    }
    return true
  }

  /** With rooms on, the first user of a room is joining: its node emits `roomStart`, before the user's `join`. */
  #roomStarts (change: Change): void {
    if (this.#mirror.size === 0 && this.#parts.options.rooms && change.origin === this.#parts.backend.nodeId) {
      this.#parts.events.changed('roomStart', '', undefined, this.#room.handle)
    }
  }

  /** Whether a change fits the mirror: a record that does not (only a foreign writer makes one) is not applied. */
  #fits (change: Change): boolean {
    const user = this.#mirror.get(change.username)
    switch (change.op) {
      case 'join': return user === undefined
      case 'unlink': return user?.link !== undefined
      case 'leave': return user !== undefined
      default: return true
    }
  }

  /**
   * A change of this node's closing: each linked connection is told only that its own user was unlinked and left.
   * The protocol's goodbye, every user's leave to every connection, is O(users × connections) frames about a world
   * that is ending; the close code says the rest.
   */
  #isGoodbye (change: Change & { cause: string }): boolean {
    return change.cause === 'close' && change.origin === this.#parts.backend.nodeId
  }

  /** Queues the event of a change this node made; answers whether it did (a change is counted by its node). */
  #emitted (change: Change, event: ChangeEvent): boolean {
    if (change.origin === this.#parts.backend.nodeId) {
      this.#parts.events.changed(event, change.username, undefined, this.#room.handle)
      return true
    }
    return false
  }

  /** Creates `username`; the connection linking it, if it is this node's, does not hear of the join: it is told who is there. */
  #applyJoin (username: string, order: number, linking: Connection | undefined): MirroredUser {
    const user = this.#mirror.join(username, order)
    this.#logUser(linking, username, 'user joined')
    this.#local.broadcast(user.joined, linking)
    return user
  }

  /** Applies a link; returns the pending link of this node it applied, if any. */
  #applyLink (change: LinkChange): PendingLink | undefined {
    const { backend, counts, events } = this.#parts
    const { flow, delivery } = this.#room
    const { username, node, generation, replay } = change
    const pending = node === backend.nodeId ? flow.take(change.token) : undefined
    const connection = pending?.connection
    let user = this.#mirror.get(username)
    const order = user?.order ?? generation // a new user joins with the generation as its join order
    const resumed = resume(replay, pending?.session, order)
    connection?.send(pending?.session === undefined ? acceptedFrame : sessionAcceptedFrame(order, resumed?.after))
    if (user === undefined) {
      this.#roomStarts(change)
      user = this.#applyJoin(username, generation, connection)
    }
    const link = connection === undefined ? { node, generation } : new LocalLink(node, generation, username, connection, replay?.head ?? 0)
    this.#mirror.setLink(user, link)
    user.data = change.data
    if (pending !== undefined) {
      (link as LocalLink).session = pending.session !== undefined
      this.#local.attach(link as LocalLink)
      flow.linked(pending, link as LocalLink)
      this.#mirror.sendTo(pending.connection)
      delivery.replay(link as LocalLink, replay, resumed, pending.early)
    }
    this.#logUser(connection, username, 'user linked')
    this.#local.broadcast(user.linked, connection)
    if (change.isNewUser) {
      this.#emitted(change, 'join')
    }
    if (change.origin === backend.nodeId) {
      counts.links++
      // Only the node that made the link emits its event: the others need not parse its data.
      events.changed('link', username, {
        data: change.data === undefined ? undefined : JSON.parse(change.data),
        replay: resumed === undefined ? undefined : { replayed: resumed.replayed, lost: resumed.lost }
      }, this.#room.handle)
    }
    if (connection !== undefined && !connection.isOpen) {
      unlinkConnection(connection, 'client') // it closed while its link was being committed
    } else if (connection === undefined && node === backend.nodeId) {
      this.#unlinkOrphan(username, generation)
    }
    return pending
  }

  /**
   * A link committed for this node that no connection here waits for: the reply of its commit was lost (a cut, a
   * failover), so its connection was refused, and the link committed all the same. No user stays linked to no
   * connection: it is unlinked, fenced by its generation (a link made since is not touched).
   */
  #unlinkOrphan (username: string, generation: number): void {
    this.#logUser(undefined, username, 'a link whose commit went unanswered was committed after all; its connection is gone, so it is unlinked', 'warn')
    codedCommit(this.#parts, this.#room.store.unlink(username, generation, 'client'), 'unlink a link with no connection', username, this.#room.name) // logged if it fails
  }

  /**
   * Ends the link of `username`. The backend fenced it already (an unlink names the generation it ends, and
   * changes come in the one order of the user space), so the mirror has that link.
   */
  #applyUnlink (username: string, takeover: boolean, goodbye: boolean): void {
    const user = this.#mirror.get(username) as MirroredUser
    const frame = unlinkedFrame(username)
    const connection = this.#local.get(username)
    if (goodbye) {
      connection?.send(frame)
    } else {
      this.#local.broadcast(frame, undefined)
    }
    this.#mirror.setLink(user, undefined)
    if (connection !== undefined) {
      this.#local.detach(username)
      if (takeover) {
        connection.log.info({ username }, 'user linked from another connection; its connection is closed')
        connection.inbound.forget()
        connection.close(closeCodeTakenOver, 'linked from another connection', this.#parts.options.closeGraceMilliseconds) // never rejects
      } else if (connection.isOpen) {
        this.#parts.gateway.startLinkTimer(connection)
      }
    }
    this.#logUser(connection, username, 'user unlinked')
  }

  #applyLeave (change: LeaveChange): void {
    const username = change.username
    const user = this.#mirror.get(username) as MirroredUser
    const connection = this.#local.get(username)
    const goodbye = this.#isGoodbye(change)
    if (user.link !== undefined) {
      this.#applyUnlink(username, false, goodbye)
      if (this.#emitted(change, 'unlink')) {
        this.#parts.counts.unlinks[unlinkCauseOfLeave[change.cause]]++
      }
    }
    const frame = leftFrame(username)
    connection?.send(frame)
    this.#mirror.leave(username)
    if (!goodbye) {
      this.#local.broadcast(frame, undefined)
    }
    this.#logUser(connection, username, change.cause === 'window' ? 'user left: its reconnection window ended' : 'user left')
    if (this.#emitted(change, 'leave')) {
      this.#parts.counts.leaves[change.cause]++
    }
  }

  /**
   * Sets the mirror to a snapshot of the user space and tells this node's connections the differences, without
   * events: the changes that made them were made, and their events emitted, elsewhere or before.
   */
  #reset (snapshot: SnapshotUser[], keepMissing: boolean): void {
    const present = new Set<string>()
    for (const { username } of snapshot) {
      present.add(username)
    }
    for (const username of keepMissing ? [] : this.#mirror.usernames()) {
      if (!present.has(username)) {
        this.#applyLeave({ op: 'leave', username, origin: '', cause: 'close' })
      }
    }
    for (const { username, order, link, data } of snapshot) {
      const user = this.#mirror.get(username) ?? this.#applyJoin(username, order, undefined)
      user.data = data
      if (user.link !== undefined && (link?.node !== user.link.node || link.generation !== user.link.generation)) {
        this.#applyUnlink(username, false, false)
      }
      if (link !== undefined && user.link === undefined) {
        this.#mirror.setLink(user, link)
        this.#local.broadcast(user.linked, undefined)
      }
    }
    this.#mirror.sort()
  }
}
