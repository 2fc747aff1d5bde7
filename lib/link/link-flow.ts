import { performance } from 'node:perf_hooks'
import type { AuthenticateInfo, RoomHandle } from '../../types/index.js'
import type { Refusal } from '../backend/backend.js'
import type { RejectionLabel } from '../counts.js'
import { type EncodedFrame, type Frame, isLinkPayload, linkType, rejectedFrame } from '../frames.js'
import type { Parts } from '../parts.js'
import { isValidUsername } from '../predicates.js'
import type { Room } from '../rooms/room.js'
import type { LocalLink } from '../space/local-links.js'
import { isThenable } from '../thenable.js'
import type { Connection } from '../transport/connection.js'
import { closeCodePolicyViolation } from '../transport/gateway.js'
import { authenticate, authenticationFailedReason, type AuthenticateListener, authenticationTimeoutReason } from './authenticate.js'
import { PendingLink } from './pending-link.js'
import { unlinkConnection } from './unlink.js'
import { encodeUserData, kUnencodable } from './user-data.js'

/** The reason a refused link request is given, and its metrics label, by refusal. */
const refusalReasons: Record<Exclude<Refusal, 'already-linked' | 'no-room'>, [string, RejectionLabel]> = {
  'not-accepting-new-users': ['server is not accepting new users', 'not_accepting_new_users'],
  full: ['server is full', 'full'],
  unavailable: ['cluster unavailable', 'cluster_unavailable']
}

/** The metrics label of a reason the authentication gave: the protocol's own, or `other` for the application's. */
function authenticationLabel (reason: string): RejectionLabel {
  switch (reason) {
    case authenticationTimeoutReason:
      return 'authentication_timeout'
    case authenticationFailedReason:
      return 'authentication_failed'
    default:
      return 'other'
  }
}

/**
 * The frames of a connection of one room that is not linked, and every link request from its validation to its
 * commit: validate, claim the user, authenticate, attach data, commit. The link is applied (accepted, told who is
 * there) by the user space, when the backend hands it back; it takes the pending link by its token.
 */
export class LinkFlow {
  readonly #parts: Parts
  readonly #room: Room
  /** The link requests from their validation until they are decided. */
  #requests = 0
  /** The links being committed, by the token of their claim. */
  readonly #committing = new Map<string, PendingLink>()
  /**
   * With replay on, the same pending links by username: messages that reach this node for a user whose link is
   * committed but not applied yet wait on it.
   */
  readonly #byUser = new Map<string, PendingLink>()

  constructor (room: Room) {
    this.#room = room
    this.#parts = room.parts
  }

  /** Whether no link request of the room is being decided. */
  get isIdle (): boolean {
    return this.#requests === 0
  }

  /** A frame of a connection that is not linked: a link request, or a rejection. */
  request (connection: Connection, frame: Frame | undefined): void {
    if (frame === undefined) {
      this.reject(connection, 'invalid message', 'invalid_message')
      return
    }
    if (frame.type !== linkType) {
      this.reject(connection, 'unlinked connection', 'unlinked_connection')
      return
    }
    const payload = frame.payload
    if (!isLinkPayload(payload)) {
      this.reject(connection, 'invalid link request', 'invalid_link_request')
      return
    }
    const versions = this.#parts.versions
    if (!versions.accepts(payload.version)) {
      this.reject(connection, versions.rejectReason(payload.version), 'version_mismatch')
      return
    }
    if (!isValidUsername(this.#parts.log, this.#parts.options.isValidUsername, payload.username)) {
      this.reject(connection, 'invalid username', 'invalid_username')
      return
    }
    const pending = new PendingLink(connection, payload.username, payload.session)
    connection.pending = pending
    this.#requests++
    this.#link(pending, payload.auth).finally(() => {
      this.#requests--
      this.end(pending)
      this.#parts.rooms.release(this.#room) // its connection may have closed meanwhile, and nothing came of it
    })
  }

  /** The wait of a link request ends (once: a link that was applied ended it already): its frames are handled. */
  end (pending: PendingLink): void {
    const connection = pending.connection
    if (connection.pending === pending) {
      connection.pending = undefined
      this.#parts.gateway.drain(connection)
    }
  }

  async #link (pending: PendingLink, auth: string | undefined): Promise<void> {
    const { lifecycle, options, admission } = this.#parts
    const store = this.#room.store
    const { connection, username } = pending
    const requested = performance.now()
    const claim = await store.claim(username, admission)
    if (!claim.claimed) {
      this.#refuseLink(connection, username, claim.refusal)
      return
    }
    if (!connection.isOpen || !lifecycle.isListening) {
      store.release(username, claim.token) // it closed while a shared backend answered the claim
      return
    }
    const info: AuthenticateInfo = { isNewUser: claim.isNewUser, auth, request: connection.request, room: this.#room.handle as RoomHandle, isLinked: claim.isLinked }
    const authentication = authenticate(
      this.#parts.events.listeners('authenticate') as AuthenticateListener[], username, info, options.authTimeoutMilliseconds, {
        onError: err => connection.log.warn({ err, username }, 'an authenticate listener or handler failed; the link is rejected'),
        onLate: call => this.#lateAuthentication(pending, call)
      })
    pending.cancel = authentication.cancel
    const authenticating = performance.now()
    let reason = await authentication.decision
    pending.cancel = undefined
    this.#parts.observer?.authenticated((performance.now() - authenticating) / 1000)
    const data = reason === undefined ? encodeUserData(connection.log, username, authentication.attached(), options.maxPayload) : undefined
    if (data === kUnencodable) {
      reason = authenticationFailedReason
    }
    if (!connection.isOpen || !lifecycle.isListening || reason !== undefined) {
      store.release(username, claim.token)
      if (reason !== undefined && connection.isOpen && lifecycle.isListening) {
        this.reject(connection, reason, authenticationLabel(reason))
      }
      return
    }
    pending.token = claim.token
    this.#committing.set(claim.token, pending)
    if (options.sessions.replay !== undefined) {
      pending.early = []
      this.#byUser.set(username, pending)
    }
    // The link is applied (accepted, attached, told who is there) when the backend hands it back, which the
    // in-memory backend does before it returns.
    const linked = store.link(username, claim.token, admission, data as string | undefined)
    const result = isThenable(linked) ? await linked : linked
    this.#forget(pending) // refused (what arrived for it stays in its mailbox), or applied already
    if (!result.linked) {
      if (connection.isOpen) {
        this.#refuseLink(connection, username, result.refusal)
      }
      return
    }
    this.#parts.observer?.linked((performance.now() - requested) / 1000)
  }

  /** The link of this node committed with `token`, which the user space applies: it is not pending any more. */
  take (token: string): PendingLink | undefined {
    const pending = this.#committing.get(token)
    if (pending !== undefined) {
      this.#forget(pending)
    }
    return pending
  }

  #forget (pending: PendingLink): void {
    this.#committing.delete(pending.token as string)
    if (this.#byUser.get(pending.username) === pending) {
      this.#byUser.delete(pending.username)
    }
  }

  /** Where the messages for `username` that come before its link is applied wait, if a link of it is committed here. */
  earlyFor (username: string): Array<EncodedFrame | number> | undefined {
    return this.#byUser.get(username)?.early
  }

  /** The pending link was applied as `link`: its connection is linked, and its rejections and link timer end. */
  linked (pending: PendingLink, link: LocalLink): void {
    pending.made = link
    pending.connection.inbound.rejections = 0
    this.#parts.gateway.stopLinkTimer(pending.connection)
  }

  /** Answers a link request that the backend refused. */
  #refuseLink (connection: Connection, username: string, refusal: Refusal): void {
    if (refusal === 'already-linked') {
      // Not counted towards maxLinkAttempts: a client whose old connection is not yet known to be dead retries this.
      this.reject(connection, `user ${username} is already linked to a connection`, 'already_linked', false)
    } else if (refusal === 'no-room') {
      this.reject(connection, `room ${this.#room.name} does not exist`, 'no_room')
    } else {
      const [reason, label] = refusalReasons[refusal]
      this.reject(connection, reason, label)
    }
  }

  /**
   * `reject` or `markAsync` was called after the decision: the application meant to decide later than it did. The
   * link the authentication made (set only when it was accepted and applied) is undone (fail closed), if the
   * connection is still on it.
   */
  #lateAuthentication (pending: PendingLink, call: string): void {
    const { connection, username } = pending
    if (call === 'attach') {
      connection.log.error({ username, call }, 'attach was called after the link was decided; it is ignored')
      return
    }
    const isOnThatLink = pending.made !== undefined && connection.link === pending.made
    connection.log.error({ username, call }, isOnThatLink
      ? `${call} was called after the link was accepted; the user is unlinked`
      : `${call} was called after the link was decided; it is ignored`)
    if (isOnThatLink) {
      unlinkConnection(connection, 'server')
    }
  }

  /** Answers a link request with `krmx/rejected`; one that `counts` brings the connection closer to `maxLinkAttempts`. */
  reject (connection: Connection, reason: string, label: RejectionLabel, counts = true): void {
    this.#parts.counts.rejections[label]++
    connection.log.debug({ reason }, 'link request rejected')
    connection.send(rejectedFrame(reason))
    if (counts && ++connection.inbound.rejections >= this.#parts.options.maxLinkAttempts) {
      this.#parts.gateway.closeConnection(connection, closeCodePolicyViolation, 'too many rejected link requests')
    }
  }
}
