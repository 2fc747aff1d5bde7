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

/**
 * The client's state, the subscribers of its store and the listeners of its events. The users are kept in a map (in
 * join order: a user that joins again goes last), so that each frame of a user list of 10,000 costs O(1); the
 * snapshot is made when it is read after a change, and the subscribers are told once per burst of changes (in a
 * microtask), so that a UI reading it on each notification does not copy the list once per frame.
 */
export class ClientState {
  status: LinkClientStatus = 'idle'
  username: string | undefined = undefined
  reason: string | undefined = undefined
  readonly #users = new Map<string, LinkUser>()
  #snapshot: LinkClientSnapshot | undefined
  #notifying = false
  readonly #listeners = new Map<string, Set<(...args: any[]) => void>>()
  readonly #subscribers = new Set<() => void>()

  get snapshot (): LinkClientSnapshot {
    this.#snapshot ??= { status: this.status, username: this.username, users: [...this.#users.values()], reason: this.reason }
    return this.#snapshot
  }

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

  /** Changes the status, username or reason; a new status is told to the `status` listeners at once. */
  set (change: { status?: LinkClientStatus, username?: string, reason?: string | undefined }): void {
    const before = this.status
    Object.assign(this, change)
    this.#changed()
    if (this.status !== before) {
      this.emit('status', this.status)
    }
  }

  /** A user joined (`false`), linked or unlinked; `undefined`: it left. */
  user (username: string, isLinked: boolean | undefined): void {
    if (isLinked === undefined) {
      this.#users.delete(username)
    } else {
      this.#users.set(username, { username, isLinked })
    }
    this.#changed()
  }

  /** A new link: the user list follows, whole. */
  clearUsers (): void {
    this.#users.clear()
    this.#changed()
  }

  #changed (): void {
    this.#snapshot = undefined
    if (!this.#notifying) {
      this.#notifying = true
      queueMicrotask(() => {
        this.#notifying = false
        for (const subscriber of this.#subscribers) {
          subscriber()
        }
      })
    }
  }
}
