import type { LeaveCause, UnlinkCause } from './backend/backend.js'

/** Why a link ended, every cause (see `UnlinkCause`): the label values of `link_server_unlinks_total`. */
export const unlinkCauses: readonly UnlinkCause[] = ['client', 'heartbeat', 'limit', 'invalid_message', 'server', 'node_death', 'takeover', 'close']
/** Why a user left, every cause (see `LeaveCause`). */
export const leaveCauses: readonly LeaveCause[] = ['client', 'kick', 'window', 'close']
/**
 * Why a link request was rejected, one label for each of the protocol's reasons; `other` for a reason the
 * application gave (`reject(reason)`, or an error meant for the client), which is not a bounded set.
 */
export const rejectionLabels = [
  'invalid_message', 'unlinked_connection', 'invalid_link_request', 'version_mismatch', 'invalid_username', 'already_linked',
  'not_accepting_new_users', 'full', 'no_room', 'cluster_unavailable', 'authentication_timeout', 'authentication_failed', 'other'
] as const
export type RejectionLabel = typeof rejectionLabels[number]
/** Why an application message was invalid: its payload failed its schema, it has no schema (`strictMessages`), it is too deep. */
export type InvalidMessageReason = 'invalid_payload' | 'unregistered_type' | 'too_deep'

function zeroes<K extends string> (keys: readonly K[]): Record<K, number> {
  return Object.fromEntries(keys.map(key => [key, 0])) as Record<K, number>
}

/**
 * What the link server counts, always: plain numbers, so that counting costs nothing worth measuring on the hot
 * path; the metrics (`lib/metrics.ts`) read them when scraped. A change is counted by the node that made it.
 */
export class Counts {
  framesReceived = 0
  /** Links accepted. */
  links = 0
  slowConsumers = 0
  rateLimited = 0
  readonly rejections = zeroes(rejectionLabels)
  readonly unlinks = zeroes(unlinkCauses)
  readonly leaves = zeroes(leaveCauses)
  /** Invalid messages by type (one with a schema in `messages`, else `other`: a bounded set) and reason. */
  readonly invalidMessages = new Map<string, Record<InvalidMessageReason, number>>()

  /** Every invalid message, whatever its type and reason (`getStats().invalidMessages`). */
  invalidMessageCount (): number {
    let count = 0
    for (const byReason of this.invalidMessages.values()) {
      count += byReason.invalid_payload + byReason.unregistered_type + byReason.too_deep
    }
    return count
  }

  invalidMessage (type: string, reason: InvalidMessageReason): void {
    let byReason = this.invalidMessages.get(type)
    if (byReason === undefined) {
      byReason = { invalid_payload: 0, unregistered_type: 0, too_deep: 0 }
      this.invalidMessages.set(type, byReason)
    }
    byReason[reason]++
  }
}
