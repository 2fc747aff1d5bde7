import type { Connection } from '../transport/connection.js'
import type { SharedFrame } from '../transport/write-coalescer.js'
import type { EncodedFrame } from '../frames.js'
import type { UserLink } from './mirror.js'

/**
 * A link to a connection of this node. It is the mirror's link of its user too (`MirroredUser.link`), so that its
 * generation is kept once; with replay on it numbers the messages sent to the user on this link.
 */
export class LocalLink implements UserLink {
  readonly node: string
  readonly generation: number
  readonly username: string
  readonly connection: Connection
  /** With replay on: the number of the last message sent to its user, of the last one a ping asked to confirm, and of the last one confirmed. */
  sent: number
  pinged = 0
  confirmed = 0
  /** With replay on: a confirmation ping leaves with the next write. */
  confirmationDue = false
  /** Whether its link request asked for the session extension: it may ping, and with replay on its messages are numbered. */
  session = false

  constructor (node: string, generation: number, username: string, connection: Connection, sent: number) {
    this.node = node
    this.generation = generation
    this.username = username
    this.connection = connection
    this.sent = sent
  }
}

/**
 * This node's linked connections, by username: the one place that says which connection of this node a user is
 * linked to. `connection.link` is its back link, set only here. Fan-out to this node's users goes through
 * `broadcast`, which writes the same encoded bytes to every socket, copied once into the turn's shared buffer
 * (see `Connection.sendShared`).
 */
export class LocalLinks {
  readonly #links = new Map<string, LocalLink>()

  get size (): number {
    return this.#links.size
  }

  /** The connection `username` is linked to on this node, if any. */
  get (username: string): Connection | undefined {
    return this.#links.get(username)?.connection
  }

  /** Links `connection` to its user, on `link`. */
  attach (link: LocalLink): void {
    link.connection.link = link
    this.#links.set(link.username, link)
  }

  /** Unlinks the connection of `username`, linked to this node. */
  detach (username: string): void {
    const link = this.#links.get(username) as LocalLink
    this.#links.delete(username)
    link.connection.link = undefined
  }

  values (): IterableIterator<LocalLink> {
    return this.#links.values()
  }

  /** Sends one frame to every linked connection of this node but `except`. */
  broadcast (frame: EncodedFrame, except: Connection | undefined): void {
    let shared: SharedFrame | undefined
    for (const { connection } of this.#links.values()) {
      if (connection !== except) {
        shared = connection.sendShared(frame, shared)
      }
    }
  }
}
