import {
  type Admission,
  type BackendSink,
  type Change,
  type ClaimResult,
  type Commit,
  CommitRefused,
  type LeaveCause,
  type LinkChange,
  type LinkResult,
  type Refusal,
  type Store,
  type UnlinkCause
} from './backend.js'
import type { EncodedFrame } from '../frames.js'
import type { ResolvedReplay, Sessions } from '../options/resolve.js'
import { Mailbox, type Mailboxes } from './mailbox.js'

/** The node id of the in-memory backend, the origin of every change. */
export const memoryNodeId = 'local'

const committed: Commit = Promise.resolve()

/** What the sessions keep of one user: its mailbox (replay on), and when its reconnection window ends. */
interface UserSession {
  mailbox: Mailbox | undefined
  /** With a reconnection window: when (`performance.now()`) the unlinked user leaves, and the timer that makes it. */
  deadline: number
  expiry: NodeJS.Timeout | undefined
}

/**
 * The store of one room of one process. Who exists and who is linked with which generation is read from the mirror
 * (`BackendSink.users`), which in one process is the user space: the store keeps only what the mirror lacks, the
 * claims and each user's session. Every change is applied (through the sink) before its method returns.
 */
export class MemoryStore implements Store {
  readonly #name: string
  /** Claimed usernames and the token of their claim. */
  readonly #claims = new Map<string, string>()
  /** The sessions of the users, by username. */
  readonly #sessions = new Map<string, UserSession>()
  /** The number of the last change, as the Redis backend numbers its log: a link's generation, a join's order. */
  #seq = 0
  #tokens = 0
  readonly #sink: BackendSink
  readonly #options: Sessions
  /** With replay on: the mailboxes that keep messages, of every room. */
  readonly #mailboxes: Mailboxes
  /** The rooms of the process that have users or claims, this one's included while it has. */
  readonly #occupied: Set<string>

  constructor (name: string, options: Sessions, sink: BackendSink, mailboxes: Mailboxes, occupied: Set<string>) {
    this.#name = name
    this.#options = options
    this.#sink = sink
    this.#mailboxes = mailboxes
    this.#occupied = occupied
  }

  async claim (username: string, admission: Admission): Promise<ClaimResult> {
    const refusal = this.#roomRefusal(admission)
    if (refusal !== undefined) {
      return { claimed: false, refusal }
    }
    const user = this.#sink.users.get(username)
    if (user === undefined && !admission.acceptNewUsers) {
      return { claimed: false, refusal: 'not-accepting-new-users' }
    }
    if (this.#claims.has(username) || (user?.link !== undefined && !this.#options.takeover)) {
      return { claimed: false, refusal: 'already-linked' }
    }
    if (user === undefined && this.#sink.users.size >= admission.maxUsers) {
      return { claimed: false, refusal: 'full' }
    }
    const token = String(++this.#tokens)
    this.#claims.set(username, token)
    this.#occupied.add(this.#name)
    return { claimed: true, isNewUser: user === undefined, isLinked: user?.link !== undefined, token }
  }

  /** Why a link may not create this room, if it would (it has no user and no claim). */
  #roomRefusal (admission: Admission): Refusal | undefined {
    if (this.#occupied.has(this.#name)) {
      return undefined
    }
    if (!admission.acceptNewRooms) {
      return 'no-room'
    }
    return this.#occupied.size >= admission.maxRooms ? 'full' : undefined
  }

  /** The room stops counting against `maxRooms` when it has no user and no claim left. */
  #vacateIfEmpty (): void {
    if (this.#sink.users.size === 0 && this.#claims.size === 0) {
      this.#occupied.delete(this.#name)
    }
  }

  release (username: string, token: string): void {
    if (this.#claims.get(username) === token) {
      this.#claims.delete(username)
      const user = this.#sink.users.get(username)
      if (user !== undefined && user.link === undefined && this.#session(username).deadline <= performance.now()) {
        this.#expire(username) // its window ended while the link was authenticated, and the link was not made
      }
      this.#vacateIfEmpty()
    }
  }

  link (username: string, token: string, admission: Admission, data: string | undefined): LinkResult {
    this.#claims.delete(username)
    const user = this.#sink.users.get(username)
    if (user === undefined && !admission.acceptNewUsers) {
      this.#vacateIfEmpty()
      return { linked: false, refusal: 'not-accepting-new-users' } // the user left while its link was authenticated
    }
    if (user === undefined && this.#sink.users.size >= admission.maxUsers) {
      return { linked: false, refusal: 'full' } // other users were created meanwhile
    }
    if (user?.link !== undefined) {
      this.#unlink(username, user.link.generation, 'takeover') // taken over: its claim said it was linked, and takeover is on
    }
    const generation = ++this.#seq
    const session = user === undefined ? this.#newSession(username) : this.#session(username)
    this.#stopExpiry(session)
    const change: LinkChange = { op: 'link', username, origin: memoryNodeId, node: memoryNodeId, generation, token, isNewUser: user === undefined, data }
    if (session.mailbox !== undefined) {
      change.replay = session.mailbox.replay(performance.now(), (this.#options.replay as ResolvedReplay).maxAgeMilliseconds)
    }
    this.#apply(change)
    return { linked: true, generation }
  }

  #newSession (username: string): UserSession {
    const session = { mailbox: this.#options.replay === undefined ? undefined : new Mailbox(), deadline: Infinity, expiry: undefined }
    this.#sessions.set(username, session)
    return session
  }

  #session (username: string): UserSession {
    return this.#sessions.get(username) as UserSession
  }

  join (username: string, admission: Admission): Commit {
    if (this.#sink.users.get(username) !== undefined) {
      return Promise.reject(new CommitRefused('exists'))
    }
    if (!this.#occupied.has(this.#name) && this.#occupied.size >= admission.maxRooms) {
      return Promise.reject(new CommitRefused('too-many-rooms'))
    }
    if (this.#sink.users.size >= admission.maxUsers) {
      return Promise.reject(new CommitRefused('full'))
    }
    this.#occupied.add(this.#name)
    this.#newSession(username)
    this.#apply({ op: 'join', username, origin: memoryNodeId, order: ++this.#seq })
    return committed
  }

  unlink (username: string, generation: number | undefined, cause: UnlinkCause): Commit {
    const user = this.#sink.users.get(username)
    const link = user?.link
    if (link === undefined) {
      return generation === undefined ? Promise.reject(new CommitRefused(user === undefined ? 'unknown' : 'not-linked')) : committed
    }
    if (generation !== undefined && generation !== link.generation) {
      return committed // that link ended already
    }
    this.#unlink(username, link.generation, cause)
    return committed
  }

  #unlink (username: string, generation: number, cause: UnlinkCause): void {
    this.#seq++
    const window = this.#options.windowMilliseconds
    if (window > 0 && cause !== 'takeover') {
      const session = this.#session(username)
      session.deadline = performance.now() + window
      session.expiry = setTimeout(() => this.#expire(username), window)
    }
    this.#apply({ op: 'unlink', username, origin: memoryNodeId, generation, cause })
  }

  leave (username: string, cause: LeaveCause): Commit {
    if (this.#sink.users.get(username) === undefined) {
      return Promise.reject(new CommitRefused('unknown'))
    }
    this.#leave(username, cause)
    return committed
  }

  #leave (username: string, cause: LeaveCause): void {
    const session = this.#session(username)
    this.#stopExpiry(session)
    this.#mailboxes.forget(session.mailbox) // its messages go with it
    this.#sessions.delete(username)
    this.#seq++
    this.#apply({ op: 'leave', username, origin: memoryNodeId, cause })
    this.#vacateIfEmpty()
  }

  /** The reconnection window of an unlinked user ended: it leaves, unless a link of it is being authenticated. */
  #expire (username: string): void {
    this.#session(username).expiry = undefined
    if (!this.#claims.has(username)) {
      this.#leave(username, 'window')
    }
  }

  #stopExpiry (session: UserSession): void {
    clearTimeout(session.expiry)
    session.expiry = undefined
    session.deadline = Infinity
  }

  post (username: string | undefined, skip: string | undefined, frame: EncodedFrame): void {
    const now = performance.now()
    if (username !== undefined) {
      this.#keep(username, frame, now) // the link server checked that it exists
      return
    }
    for (const name of this.#sink.users.usernames()) {
      if (name !== skip) {
        this.#keep(name, frame, now)
      }
    }
  }

  /** Keeps a message for a user, and delivers it if the user is linked. */
  #keep (username: string, frame: EncodedFrame, now: number): void {
    const { maxMessages, maxAgeMilliseconds } = this.#options.replay as ResolvedReplay
    const number = this.#mailboxes.add(this.#session(username).mailbox as Mailbox, frame, now, maxMessages, maxAgeMilliseconds)
    if (this.#sink.users.get(username)?.link !== undefined) {
      this.#sink.deliver(username, frame, number)
    }
  }

  confirm (username: string, generation: number, number: number): void {
    if (this.#sink.users.get(username)?.link?.generation === generation) {
      (this.#session(username).mailbox as Mailbox).confirm(number)
    }
  }

  /** Every user leaves, in join order (a leave listener may kick the next ones first). */
  closeNode (): void {
    const sink = this.#sink
    for (const username of sink.users.usernames()) {
      if (sink.users.get(username) !== undefined) {
        this.#leave(username, 'close')
      }
    }
  }

  stop (): void {
    this.#mailboxes.stop()
    for (const session of this.#sessions.values()) {
      this.#stopExpiry(session)
    }
  }

  #apply (change: Change): void {
    this.#sink.apply(change)
  }
}
