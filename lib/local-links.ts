import type { Connection, SharedFrame } from './connection.js'
import type { EncodedFrame } from './frames.js'

/**
 * This node's linked connections, by username: the one place that says which connection of this
 * node a user is linked to. `connection.username` and `connection.generation` are its back links,
 * set only here. Fan-out to this node's users goes through `broadcast`, which writes the same
 * encoded bytes to every socket, copied once into the turn's shared buffer (see `Connection.sendShared`).
 */
export class LocalLinks {
  readonly #connections = new Map<string, Connection>()

  get size (): number {
    return this.#connections.size
  }

  get (username: string): Connection | undefined {
    return this.#connections.get(username)
  }

  /** Links `connection` to `username`; with replay on, `sent` is the number of the last message the link was sent (its replay). */
  attach (username: string, connection: Connection, generation: number, sent: number): void {
    connection.username = username
    connection.generation = generation
    connection.sent = sent
    connection.links++
    this.#connections.set(username, connection)
  }

  /** Unlinks the connection of `username` here, if it has one, and returns it. */
  detach (username: string): Connection | undefined {
    const connection = this.#connections.get(username)
    if (connection !== undefined) {
      this.#connections.delete(username)
      connection.username = undefined
      connection.generation = undefined
      connection.sent = connection.pinged = connection.confirmed = 0
    }
    return connection
  }

  values (): IterableIterator<Connection> {
    return this.#connections.values()
  }

  /** Sends one frame to every linked connection of this node but `except`. */
  broadcast (frame: EncodedFrame, except: Connection | undefined): void {
    let shared: SharedFrame | undefined
    for (const connection of this.#connections.values()) {
      if (connection !== except) {
        shared = connection.sendShared(frame, shared)
      }
    }
  }
}
