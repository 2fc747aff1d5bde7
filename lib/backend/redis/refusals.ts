import { performance } from 'node:perf_hooks'
import type { FastifyBaseLogger } from 'fastify'

/** What a node reads from Redis and refuses, never applying it: a publication of another node, a record of the log. */
export type RefusedInput = 'publication' | 'record'
/** A refusal is logged at most this often for each kind of input, with how many were refused since. */
const refusalLogMilliseconds = 1_000

/** What this node refused of what it read from Redis, by kind, since it started; each refusal says why in the log. */
export class Refusals {
  readonly counts: Record<RefusedInput, number> = { publication: 0, record: 0 }
  /** When a refusal of each kind was last logged, and how many were refused since. */
  readonly #logged = { publication: { at: -Infinity, since: 0 }, record: { at: -Infinity, since: 0 } }
  readonly #log: FastifyBaseLogger

  constructor (log: FastifyBaseLogger) {
    this.#log = log
  }

  /** Counts a refusal, and says why: at most once a second for each kind. */
  refuse (input: RefusedInput, reason: string): void {
    this.counts[input]++
    const logged = this.#logged[input]
    logged.since++
    const now = performance.now()
    if (now - logged.at >= refusalLogMilliseconds) {
      this.#log.warn({ input, refused: logged.since }, `Redis held ${input === 'record' ? 'a log record' : 'a publication'} this node refused: ${reason}`)
      logged.at = now
      logged.since = 0
    }
  }
}
