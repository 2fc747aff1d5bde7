import type { EncodedFrame } from '../frames.js'
import type { Replay } from './backend.js'

/**
 * The messages addressed to one user that it has not confirmed, for the in-memory backend (the Redis
 * backend keeps the same in a stream per user). Every message addressed to the user is numbered, 1, 2,
 * ...; it stays until the user's connection confirms it (a pong to a ping sent after it) or a bound drops
 * it: at most `maxMessages`, none older than `maxAgeMilliseconds`. Whatever was dropped unconfirmed is
 * counted when the user links again: `head - confirmed - replayed`.
 */
export class Mailbox {
  /** The number of the last message addressed to the user. */
  head = 0
  /** Every message up to this number was confirmed. */
  confirmed = 0
  /**
   * The kept messages from index `#start` on, numbered `head - kept + 1` to `head`, and when each was kept.
   * What is dropped is skipped, and cut off the arrays only once it is most of them: no copy per message.
   */
  readonly #frames: EncodedFrame[] = []
  readonly #times: number[] = []
  #start = 0

  /** How many messages it keeps. */
  get kept (): number {
    return this.#frames.length - this.#start
  }

  /** Keeps one more message; returns its number. */
  add (frame: EncodedFrame, now: number, maxMessages: number, maxAgeMilliseconds: number): number {
    this.#frames.push(frame)
    this.#times.push(now)
    if (this.kept > maxMessages) {
      this.#drop(1)
    }
    this.#expire(now, maxAgeMilliseconds)
    return ++this.head
  }

  /** Every message up to `number` reached the user. */
  confirm (number: number): void {
    if (number <= this.confirmed) {
      return
    }
    this.confirmed = number
    this.#drop(Math.min(this.kept, number - (this.head - this.kept)))
  }

  /** What a new link of the user is sent: the kept messages, and how many the bounds dropped unconfirmed. */
  replay (now: number, maxAgeMilliseconds: number): Replay {
    this.#expire(now, maxAgeMilliseconds)
    const messages = this.#frames.slice(this.#start)
    return { messages, lost: this.head - this.confirmed - messages.length, head: this.head }
  }

  /** Drops the messages older than `maxAgeMilliseconds`; answers whether it still keeps any. */
  expire (now: number, maxAgeMilliseconds: number): boolean {
    this.#expire(now, maxAgeMilliseconds)
    return this.kept > 0
  }

  #expire (now: number, maxAgeMilliseconds: number): void {
    let old = this.#start
    while (old < this.#times.length && now - this.#times[old] > maxAgeMilliseconds) {
      old++
    }
    this.#drop(old - this.#start)
  }

  #drop (count: number): void {
    if (count <= 0) {
      return
    }
    this.#start += count
    if (this.#start > 32 && this.#start * 2 > this.#frames.length) {
      this.#frames.splice(0, this.#start)
      this.#times.splice(0, this.#start)
      this.#start = 0
    }
  }
}

/** The sweep of expired messages runs a quarter of their age apart, and at most this often. */
const minimumSweepMilliseconds = 100

/** The mailboxes of the in-memory store that keep messages, and the sweep that expires them. */
export class Mailboxes {
  readonly #keeping = new Set<Mailbox>()
  #sweep: NodeJS.Timeout | undefined

  /**
   * A user that never comes back would hold its messages past their age: they are dropped at most a quarter of
   * their age late (or the sweep's least interval).
   */
  sweepEvery (maxAgeMilliseconds: number): void {
    this.#sweep = setInterval(() => this.#expire(maxAgeMilliseconds), Math.max(minimumSweepMilliseconds, maxAgeMilliseconds / 4))
    this.#sweep.unref()
  }

  /** How many messages the mailboxes keep. */
  get kept (): number {
    let kept = 0
    for (const mailbox of this.#keeping) {
      kept += mailbox.kept
    }
    return kept
  }

  /** Keeps one more message in `mailbox`; returns its number. */
  add (mailbox: Mailbox, frame: EncodedFrame, now: number, maxMessages: number, maxAgeMilliseconds: number): number {
    this.#keeping.add(mailbox)
    return mailbox.add(frame, now, maxMessages, maxAgeMilliseconds)
  }

  /** A mailbox whose user left (`undefined` with replay off). */
  forget (mailbox: Mailbox | undefined): void {
    this.#keeping.delete(mailbox as Mailbox)
  }

  stop (): void {
    clearInterval(this.#sweep)
  }

  #expire (maxAgeMilliseconds: number): void {
    const now = performance.now()
    for (const mailbox of this.#keeping) {
      if (!mailbox.expire(now, maxAgeMilliseconds)) {
        this.#keeping.delete(mailbox)
      }
    }
  }
}
