import type { LinkServerStatus } from '../types/index.js'
import { FST_LINK_CLOSED, FST_LINK_NOT_READY } from './errors.js'

/** What may be done while the server takes links only: joins, kicks. */
export const whileRunning: readonly LinkServerStatus[] = ['listening']
/** What may be done while the server closes too: sends, unlinks (a `leave` listener may still act on the users that remain). */
export const whileRunningOrClosing: readonly LinkServerStatus[] = ['listening', 'closing']

/** The status of the link server: `initializing` until ready, `listening`, `closing` from `preClose`, then `closed`. */
export class Lifecycle {
  #status: LinkServerStatus = 'initializing'

  get status (): LinkServerStatus {
    return this.#status
  }

  /** Whether links are taken, and new connections accepted. */
  get isListening (): boolean {
    return this.#status === 'listening'
  }

  set (status: LinkServerStatus): void {
    this.#status = status
  }

  /** Throws the coded error of `action` when the status does not allow it. */
  assert (action: string, allowed: readonly LinkServerStatus[]): void {
    if (allowed.includes(this.#status)) {
      return
    }
    if (this.#status === 'initializing') {
      throw new FST_LINK_NOT_READY(action)
    }
    throw new FST_LINK_CLOSED(action, this.#status)
  }

  /** Why the link server does not take links now, for the readiness endpoint; `undefined` when it does. */
  notReadyReason (isAvailable: boolean): string | undefined {
    if (this.#status !== 'listening') {
      return this.#status === 'initializing' ? 'the link server is starting' : 'the link server is closing'
    }
    return isAvailable ? undefined : 'the cluster is unavailable: Redis does not answer'
  }
}
