import type { LinkUser } from '../../types/index.js'

/**
 * Where the client is: `idle` before `link()`; `connecting` and `linking` on the way; `linked`; `reconnecting` after
 * its connection dropped, until it is linked again; `closed` for good (after `leave()` or `close()`, a takeover, a
 * kick, or a rejection that would not change).
 */
export type LinkClientStatus = 'idle' | 'connecting' | 'linking' | 'linked' | 'reconnecting' | 'closed'

/** What the client knows, for a UI: a new object only when something in it changed. */
export interface LinkClientSnapshot {
  readonly status: LinkClientStatus
  /** The user this client links as, once `link()` was called. */
  readonly username: string | undefined
  /** The users of the user space (or room) as the server told this client, in join order. */
  readonly users: readonly LinkUser[]
  /** Why the client closed for good, or why its last link was refused. */
  readonly reason: string | undefined
}

/** The client's snapshot, the subscribers of its store and the listeners of its events. */
export class ClientState {
  snapshot: LinkClientSnapshot = { status: 'idle', username: undefined, users: [], reason: undefined }
  readonly #listeners = new Map<string, Set<(...args: any[]) => void>>()
  readonly #subscribers = new Set<() => void>()

  on (event: string, listener: (...args: any[]) => void): () => void {
    let listeners = this.#listeners.get(event)
    if (listeners === undefined) {
      listeners = new Set()
      this.#listeners.set(event, listeners)
    }
    listeners.add(listener)
    return () => listeners.delete(listener)
  }

  subscribe (listener: () => void): () => void {
    this.#subscribers.add(listener)
    return () => this.#subscribers.delete(listener)
  }

  emit (event: string, ...args: unknown[]): void {
    for (const listener of this.#listeners.get(event) ?? []) {
      try {
        listener(...args)
      } catch (err) {
        // Neither the client nor the other listeners stop for it; it is thrown where the platform reports it.
        setTimeout(() => { throw err })
      }
    }
  }

  /** A new snapshot with `change`; a new status is told to the `status` listeners, every change to the subscribers. */
  set (change: Partial<LinkClientSnapshot>): void {
    const before = this.snapshot
    this.snapshot = { ...before, ...change }
    if (change.status !== undefined && change.status !== before.status) {
      this.emit('status', change.status)
    }
    for (const subscriber of this.#subscribers) {
      subscriber()
    }
  }
}
