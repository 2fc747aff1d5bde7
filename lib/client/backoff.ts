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

/** The tries of a client's reconnection: how many in a row, how many `already linked` refusals in a row, the timer of the next. */
export class Retries {
  readonly #options: ResolvedReconnect | undefined
  readonly #alreadyLinkedRetries: number
  readonly #random: () => number
  #attempt = 0
  #alreadyLinked = 0
  #timer: ReturnType<typeof setTimeout> | undefined

  constructor (options: ReconnectOptions | false | undefined, alreadyLinkedRetries: number, random: () => number) {
    this.#options = resolveReconnect(options)
    this.#alreadyLinkedRetries = alreadyLinkedRetries
    this.#random = random
  }

  /** Whether a dropped connection is opened again (reconnection on, and tries left). */
  get mayReconnect (): boolean {
    return this.#options !== undefined && this.#attempt < this.#options.maxAttempts
  }

  /** Whether an `already linked` refusal is tried again (counted), while reconnecting. */
  retriesAlreadyLinked (): boolean {
    return this.#alreadyLinked++ < this.#alreadyLinkedRetries
  }

  /** Calls `open` after the backoff delay of the next try. */
  schedule (open: () => void): void {
    this.#timer = setTimeout(open, backoffDelay(this.#options as ResolvedReconnect, this.#attempt++, this.#random))
  }

  /** Linked: the next drop starts from the first try. */
  reset (): void {
    this.#attempt = 0
    this.#alreadyLinked = 0
  }

  cancel (): void {
    clearTimeout(this.#timer)
  }
}
