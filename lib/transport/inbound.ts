import type { Frame } from '../frames.js'

/** A frame that arrived while the connection waited (`undefined` for a malformed one), and its size on the wire. */
export interface QueuedFrame {
  frame: Frame | undefined
  bytes: number
}

/** The rate limit of incoming frames: a token bucket of `burst` tokens, refilled at `rate` a second. */
export interface RateLimit {
  rate: number
  burst: number
}

/**
 * What the gateway keeps of one connection's incoming frames: the frames that wait (behind a link request or a
 * change being committed), its rate limit's bucket, its link timer and its rejected link requests.
 */
export class Inbound {
  /** Frames that arrived while the connection waited, in arrival order, and their bytes. */
  readonly queue: QueuedFrame[] = []
  queuedBytes = 0
  /** The unlinks and leaves of the connection's user being committed; frames wait meanwhile. */
  holds = 0
  /** Closes the connection if it is not linked in time; set while it is not linked. */
  linkTimer: NodeJS.Timeout | undefined = undefined
  /** Link requests rejected in a row. */
  rejections = 0
  /** The frames the connection may still send now (the rate limit's bucket), and when (`performance.now()`) it was refilled. */
  #tokens: number
  #refilledAt: number

  constructor (tokens: number, now: number) {
    this.#tokens = tokens
    this.#refilledAt = now
  }

  /** Takes one token of the bucket, after refilling it for the time that passed; `false` when there is none. */
  take (limit: RateLimit, now: number): boolean {
    this.#tokens = Math.min(limit.burst, this.#tokens + (now - this.#refilledAt) * limit.rate / 1000)
    this.#refilledAt = now
    if (this.#tokens < 1) {
      return false
    }
    this.#tokens--
    return true
  }

  /** Keeps a frame; `false` when the queue is over its bounds (the connection is then closed). */
  enqueue (frame: Frame | undefined, bytes: number, maxFrames: number, maxBytes: number): boolean {
    this.queuedBytes += bytes
    if (this.queue.length >= maxFrames || this.queuedBytes > maxBytes) {
      return false
    }
    this.queue.push({ frame, bytes })
    return true
  }

  /** The oldest frame that waits. */
  shift (): Frame | undefined {
    const { frame, bytes } = this.queue.shift() as QueuedFrame
    this.queuedBytes -= bytes
    return frame
  }

  /** Drops every frame that waits: nothing a closing connection sent is handled any more. */
  forget (): void {
    this.queue.length = 0
    this.queuedBytes = 0
  }
}
