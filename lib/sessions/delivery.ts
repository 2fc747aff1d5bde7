import type { Replay } from '../backend/backend.js'
import type { EncodedFrame, LinkSession } from '../frames.js'
import { FST_LINK_UNKNOWN_USER } from '../errors.js'
import type { Room } from '../rooms/room.js'
import { LocalLink } from '../space/local-links.js'
import type { Connection } from '../transport/connection.js'
import { confirmedBy } from './confirmations.js'

/**
 * With replay on, how often each linked connection that was sent messages since its last confirmation is
 * pinged to confirm them: a pong for every flush would double the reads of a busy server.
 */
export const confirmIntervalMilliseconds = 100

/** Where the messages of a link start (`after` the one with that number), how many of the kept ones follow, and how many before them its client lost. */
export interface Resumption {
  after: number
  replayed: number
  lost: number
}

/**
 * With replay on, where the messages of a new link of a user (join order `user`) start: after the kept ones that the
 * link's client says it has (the session extension), else after those confirmed or dropped; and how many its client
 * lost (dropped by the bounds before it had them). A number the client makes up (beyond the last message, or of
 * another life of the user, which has another join order) is ignored: the messages start after those confirmed.
 */
export function resume (replay: Replay | undefined, session: LinkSession | undefined, user: number): Resumption | undefined {
  if (replay === undefined) {
    return undefined
  }
  const first = replay.head - replay.messages.length // the last number before the kept messages
  const had = session?.user === user ? session.last ?? 0 : 0
  if (had > first && had <= replay.head) {
    return { after: had, replayed: replay.head - had, lost: 0 }
  }
  return { after: first, replayed: replay.messages.length, lost: had <= first ? Math.min(replay.lost, first - had) : replay.lost }
}

/** Writes message `number` of its user to `link`'s connection: numbered for a session client, as it is for another. */
function write (link: LocalLink, frame: EncodedFrame, number: number): void {
  if (link.session) {
    link.connection.sendNumbered(frame, number)
  } else {
    link.connection.send(frame)
  }
}

/**
 * Where the application's messages to the users of one room go: to this node's connections, to the nodes holding the
 * others, or, with replay on, through the backend that numbers and keeps them until confirmed; replays, messages that
 * come before the link they are for, and confirmations.
 */
export class Delivery {
  readonly #room: Room

  constructor (room: Room) {
    this.#room = room
  }

  /** Sends a message to a user; throws the coded error of a user that does not exist, or with replay off is not linked. */
  send (username: string, frame: EncodedFrame): void {
    const { space, store, bus, parts } = this.#room
    if (parts.options.sessions.replay !== undefined) {
      if (space.get(username) === undefined) {
        throw new FST_LINK_UNKNOWN_USER('send a message', username)
      }
      store.post(username, undefined, frame) // kept for it until it confirms it, linked or not
      return
    }
    const link = space.linkOf('send a message', username)
    if (link instanceof LocalLink) {
      link.connection.send(frame)
    } else {
      bus.deliver(link.node, username, frame)
    }
  }

  /** Sends a message to every user but `skip`. */
  broadcast (frame: EncodedFrame, skip: string | undefined): void {
    const { store, bus, parts } = this.#room
    if (parts.options.sessions.replay !== undefined) {
      store.post(undefined, skip, frame)
      return
    }
    bus.broadcast(frame, skip)
  }

  /**
   * A message for `username`, sent here by the backend: to its connection, unless the connection had it in its
   * replay; one that comes before the link it is for is applied waits for it.
   */
  deliver (username: string, frame: EncodedFrame, number: number): void {
    const link = this.#room.space.localLink(username)
    if (link === undefined) {
      this.#room.flow.earlyFor(username)?.push(frame, number)
      return
    }
    if (number === 0) {
      link.connection.send(frame)
    } else if (number > link.sent) {
      link.sent = number
      write(link, frame, number)
    }
  }

  /**
   * What a link missed, after the user list and before anything new: its replay, then what reached this node for it
   * while it was committed (`early`), which another node may have sent already.
   */
  replay (link: LocalLink, replay: Replay | undefined, resumed: Resumption | undefined, early: Array<EncodedFrame | number> | undefined): void {
    if (replay !== undefined) {
      const { messages, head } = replay
      // the kept messages are numbered up to `head`; the last `replayed` of them follow what the client has
      for (let i = messages.length - (resumed as Resumption).replayed; i < messages.length; i++) {
        write(link, messages[i], head - messages.length + 1 + i)
      }
    }
    if (early !== undefined) {
      for (let i = 0; i < early.length; i += 2) {
        this.deliver(link.username, early[i] as EncodedFrame, early[i + 1] as number)
      }
    }
  }

  /** A pong: with replay on, it confirms the messages its ping named (a heartbeat's pong confirms nothing). */
  pong (connection: Connection, data: Buffer): void {
    const link = connection.link
    const number = link === undefined || link.sent === 0 ? undefined : confirmedBy(link, data)
    if (number !== undefined) {
      this.#room.store.confirm((link as LocalLink).username, (link as LocalLink).generation, number)
    }
  }
}
