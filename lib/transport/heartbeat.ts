import type { Connection } from './connection.js'

/**
 * One timer for all connections: every interval, a connection that did not answer the previous
 * ping is terminated (by `onSilent`), and every other one is pinged again. It alone writes `Connection.isAlive`.
 */
export class Heartbeat {
  readonly #intervalMilliseconds: number
  readonly #connections: ReadonlySet<Connection>
  readonly #onSilent: (connection: Connection) => void
  #timer: NodeJS.Timeout | undefined

  /** `onSilent` is called for a connection that did not answer the previous ping, and must terminate it. */
  constructor (intervalMilliseconds: number, connections: ReadonlySet<Connection>, onSilent: (connection: Connection) => void) {
    this.#intervalMilliseconds = intervalMilliseconds
    this.#connections = connections
    this.#onSilent = onSilent
  }

  /** A pong of `connection`: it is alive. */
  answered (connection: Connection): void {
    connection.isAlive = true
  }

  start (): void {
    if (this.#intervalMilliseconds > 0) {
      this.#timer = setInterval(() => this.#beat(), this.#intervalMilliseconds)
    }
  }

  stop (): void {
    clearInterval(this.#timer)
    this.#timer = undefined
  }

  #beat (): void {
    for (const connection of this.#connections) {
      if (!connection.isAlive) {
        this.#onSilent(connection)
        continue
      }
      connection.isAlive = false
      connection.socket.ping()
    }
  }
}
