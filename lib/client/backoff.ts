/** How a client that lost its connection tries again: exponential backoff with full jitter, capped. */
export interface ReconnectOptions {
  /** The first delay's cap, in milliseconds (default 250). */
  initialDelayMilliseconds?: number
  /** The most any delay may be (default 10,000). */
  maxDelayMilliseconds?: number
  /** How much the cap grows after each failed try (default 2). */
  factor?: number
  /** How many tries in a row, at most, before the client gives up (default `Infinity`). */
  maxAttempts?: number
}

/** The reconnect options, with their defaults. */
export type ResolvedReconnect = Required<ReconnectOptions>

export function resolveReconnect (options: ReconnectOptions | false | undefined): ResolvedReconnect | undefined {
  if (options === false) {
    return undefined
  }
  return { initialDelayMilliseconds: 250, maxDelayMilliseconds: 10_000, factor: 2, maxAttempts: Infinity, ...options }
}

/**
 * The delay before try `attempt` (0 for the first): a random time between 0 and the cap of that try, so that many
 * clients cut at once (a server restart) come back spread out, not in lockstep ("full jitter").
 */
export function backoffDelay (options: ResolvedReconnect, attempt: number, random: () => number): number {
  const cap = Math.min(options.maxDelayMilliseconds, options.initialDelayMilliseconds * options.factor ** attempt)
  return Math.floor(random() * cap)
}
