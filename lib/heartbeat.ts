import type { Connection } from './connection.js'

/**
 * One timer for all connections: every interval, a connection that did not answer the previous
 * ping is terminated, and every other one is pinged again.
 */
export class Heartbeat {
  readonly #intervalMilliseconds: number
  readonly #connections: ReadonlySet<Connection>
  #timer: NodeJS.Timeout | undefined

  constructor (intervalMilliseconds: number, connections: ReadonlySet<Connection>) {
    this.#intervalMilliseconds = intervalMilliseconds
    this.#connections = connections
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
        connection.socket.terminate()
        continue
      }
      connection.isAlive = false
      connection.socket.ping()
    }
  }
}
