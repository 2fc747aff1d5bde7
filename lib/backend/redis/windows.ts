import type { Change } from '../backend.js'
import type { RedisParts } from './parts.js'

/**
 * The reconnection windows of the users this node unlinked: each leaves when its window ends (the heartbeat's
 * sweep makes it leave as well, a beat later at most, when this node died meanwhile).
 */
export class Windows {
  readonly #parts: RedisParts
  readonly #timers = new Map<string, NodeJS.Timeout>()
  /** This node stopped serving the room: the heartbeats of the nodes end its windows. */
  #stopped = false

  constructor (parts: RedisParts) {
    this.#parts = parts
  }

  /** A change applied here: an unlink this node made opens its user's window; any other change of the user closes it. */
  follow (change: Change): void {
    const { nodeId, sessions } = this.#parts
    const username = change.username
    clearTimeout(this.#timers.get(username))
    this.#timers.delete(username)
    // A node that stops leaves the windows of its users to the heartbeats of the others.
    if (change.op === 'unlink' && change.origin === nodeId && change.cause !== 'takeover' && sessions.windowMilliseconds > 0 && !this.#stopped) {
      this.#expireIn(username, sessions.windowMilliseconds)
    }
  }

  #expireIn (username: string, milliseconds: number): void {
    const { nodeId, redis, space } = this.#parts
    this.#timers.set(username, setTimeout(() => {
      this.#timers.delete(username)
      redis.commands.expire(space.seqKey, space.prefix, space.epoch, nodeId, username).then(reply => {
        if (reply[0] === 'wait' && !redis.stopped) {
          this.#expireIn(username, reply[1] as number) // Redis' clock is behind this node's
        }
      }, () => {}) // Redis is away: the heartbeat's sweep makes it leave later
    }, milliseconds))
  }

  stop (): void {
    this.#stopped = true
    for (const timer of this.#timers.values()) {
      clearTimeout(timer)
    }
  }
}
