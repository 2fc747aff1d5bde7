import type { SocketLike } from './options.js'

/**
 * The client's liveness check of its connection, while linked to a server that speaks the session extension (a
 * browser cannot see WebSocket pings): quiet for an interval, it sends `krmx/ping`; quiet for another, the connection
 * is dead.
 */
export class Heartbeat {
  readonly #interval: number | false
  #timer: ReturnType<typeof setInterval> | undefined
  /** Whether a frame arrived since the last tick, and whether a ping is on its way. */
  #heard = false
  #pinged = false

  constructor (interval: number | false) {
    this.#interval = interval
  }

  /** Checks `socket` from now on; `dead` is called when it went quiet for two intervals. */
  start (socket: SocketLike, dead: () => void): void {
    if (this.#interval !== false) {
      this.stop() // (a server that accepts twice)
      this.#timer = setInterval(() => this.#beat(socket, dead), this.#interval)
    }
  }

  /** A frame arrived. */
  heard (): void {
    this.#heard = true
  }

  stop (): void {
    clearInterval(this.#timer)
    this.#timer = undefined
    this.#heard = false
    this.#pinged = false
  }

  #beat (socket: SocketLike, dead: () => void): void {
    if (this.#heard) {
      this.#heard = false
      this.#pinged = false
    } else if (!this.#pinged) {
      this.#pinged = true
      socket.send('{"type":"krmx/ping"}')
    } else {
      dead()
    }
  }
}
