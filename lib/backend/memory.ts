import {
  type Admission,
  type Backend,
  type BackendSink,
  type Change,
  type ClaimResult,
  type Commit,
  CommitRefused,
  type LeaveCause,
  type LinkChange,
  type LinkResult,
  type UnlinkCause
} from './backend.js'
import type { EncodedFrame } from '../frames.js'
import type { ResolvedReplay, Sessions } from '../options/resolve.js'
import { Mailbox } from './mailbox.js'

/** The node id of the in-memory backend, the origin of every change. */
export const memoryNodeId = 'local'

const committed: Commit = Promise.resolve()
/** The sweep of expired messages runs a quarter of their age apart, and at most this often. */
const minimumSweepMilliseconds = 100

/** One user: the generation of its link, when it is linked. */
interface MemoryUser {
  generation: number | undefined
  /** With replay on: the messages it has not confirmed. */
  mailbox: Mailbox | undefined
  /** With a reconnection window: when (`performance.now()`) the unlinked user leaves, and the timer that makes it. */
  deadline: number
  expiry: NodeJS.Timeout | undefined
}

/**
 * The user space of one process, the default backend. Every commit is applied before it returns, so
 * the link server behaves exactly as it did before there were backends: a change, its frames and its
 * events all happen within the call that made it.
 */
export class MemoryBackend implements Backend {
  readonly nodeId = memoryNodeId
  readonly nodes = 1
  readonly isAvailable = true
  readonly #users = new Map<string, MemoryUser>()
  /** Claimed usernames and the token of their claim. */
  readonly #claims = new Map<string, string>()
  /** The number of the last change, as the Redis backend numbers its log: a link's generation, a join's order. */
  #seq = 0
  #tokens = 0
  #sink: BackendSink | undefined
  readonly #sessions: Sessions
  /** With replay on: the mailboxes that keep messages, which the sweep expires. */
  readonly #keeping = new Set<Mailbox>()
  #sweep: NodeJS.Timeout | undefined

  constructor (sessions: Sessions) {
    this.#sessions = sessions
  }

  async start (sink: BackendSink): Promise<void> {
    this.#sink = sink
    const replay = this.#sessions.replay
    if (replay !== undefined) {
      // A user that never comes back would hold its messages past their age: they are dropped at most a quarter of
      // their age late (or the sweep's least interval).
      const maxAge = replay.maxAgeMilliseconds
      this.#sweep = setInterval(() => this.#expireMail(maxAge), Math.max(minimumSweepMilliseconds, maxAge / 4))
      this.#sweep.unref()
    }
  }

  /** How many messages the mailboxes keep, for every user. */
  get keptMessages (): number {
    let kept = 0
    for (const mailbox of this.#keeping) {
      kept += mailbox.kept
    }
    return kept
  }

  #expireMail (maxAgeMilliseconds: number): void {
    const now = performance.now()
    for (const mailbox of this.#keeping) {
      if (!mailbox.expire(now, maxAgeMilliseconds)) {
        this.#keeping.delete(mailbox)
      }
    }
  }

  async claim (username: string, admission: Admission): Promise<ClaimResult> {
    const user = this.#users.get(username)
    if (user === undefined && !admission.acceptNewUsers) {
      return { claimed: false, refusal: 'not-accepting-new-users' }
    }
    if (this.#claims.has(username) || (user?.generation !== undefined && !this.#sessions.takeover)) {
      return { claimed: false, refusal: 'already-linked' }
    }
    if (user === undefined && this.#users.size >= admission.maxUsers) {
      return { claimed: false, refusal: 'full' }
    }
    const token = String(++this.#tokens)
    this.#claims.set(username, token)
    return { claimed: true, isNewUser: user === undefined, isLinked: user?.generation !== undefined, token }
  }

  release (username: string, token: string): void {
    if (this.#claims.get(username) === token) {
      this.#claims.delete(username)
      const user = this.#users.get(username)
      if (user !== undefined && user.generation === undefined && user.deadline <= performance.now()) {
        this.#expire(username) // its window ended while the link was authenticated, and the link was not made
      }
    }
  }

  link (username: string, token: string, admission: Admission, data: string | undefined): LinkResult {
    this.#claims.delete(username)
    const user = this.#users.get(username)
    if (user === undefined && !admission.acceptNewUsers) {
      return { linked: false, refusal: 'not-accepting-new-users' } // the user left while its link was authenticated
    }
    if (user === undefined && this.#users.size >= admission.maxUsers) {
      return { linked: false, refusal: 'full' } // other users were created meanwhile
    }
    if (user?.generation !== undefined) {
      this.#unlink(username, user, 'takeover') // taken over: its claim said it was linked, and takeover is on
    }
    const generation = ++this.#seq
    const linked = user ?? this.#newUser()
    linked.generation = generation
    this.#stopExpiry(linked)
    this.#users.set(username, linked)
    const change: LinkChange = { op: 'link', username, origin: memoryNodeId, node: memoryNodeId, generation, token, isNewUser: user === undefined, data }
    if (linked.mailbox !== undefined) {
      change.replay = linked.mailbox.replay(performance.now(), (this.#sessions.replay as ResolvedReplay).maxAgeMilliseconds)
    }
    this.#apply(change)
    return { linked: true, generation }
  }

  #newUser (): MemoryUser {
    return { generation: undefined, mailbox: this.#sessions.replay === undefined ? undefined : new Mailbox(), deadline: Infinity, expiry: undefined }
  }

  join (username: string, maxUsers: number): Commit {
    if (this.#users.has(username)) {
      return Promise.reject(new CommitRefused('exists'))
    }
    if (this.#users.size >= maxUsers) {
      return Promise.reject(new CommitRefused('full'))
    }
    this.#users.set(username, this.#newUser())
    this.#apply({ op: 'join', username, origin: memoryNodeId, order: ++this.#seq })
    return committed
  }

  unlink (username: string, generation: number | undefined, cause: UnlinkCause): Commit {
    const user = this.#users.get(username)
    if (user?.generation === undefined) {
      return generation === undefined ? Promise.reject(new CommitRefused(user === undefined ? 'unknown' : 'not-linked')) : committed
    }
    if (generation !== undefined && generation !== user.generation) {
      return committed // that link ended already
    }
    this.#unlink(username, user, cause)
    return committed
  }

  #unlink (username: string, user: MemoryUser, cause: UnlinkCause): void {
    const ended = user.generation as number
    user.generation = undefined
    this.#seq++
    const window = this.#sessions.windowMilliseconds
    if (window > 0 && cause !== 'takeover') {
      user.deadline = performance.now() + window
      user.expiry = setTimeout(() => this.#expire(username), window)
    }
    this.#apply({ op: 'unlink', username, origin: memoryNodeId, generation: ended, cause })
  }

  leave (username: string, cause: LeaveCause): Commit {
    const user = this.#users.get(username)
    if (user === undefined) {
      return Promise.reject(new CommitRefused('unknown'))
    }
    this.#leave(username, user, cause)
    return committed
  }

  #leave (username: string, user: MemoryUser, cause: LeaveCause): void {
    this.#stopExpiry(user)
    this.#keeping.delete(user.mailbox as Mailbox) // its messages go with it (undefined with replay off)
    this.#users.delete(username)
    this.#seq++
    this.#apply({ op: 'leave', username, origin: memoryNodeId, cause })
  }

  /** The reconnection window of an unlinked user ended: it leaves, unless a link of it is being authenticated. */
  #expire (username: string): void {
    const user = this.#users.get(username) as MemoryUser
    user.expiry = undefined
    if (!this.#claims.has(username)) {
      this.#leave(username, user, 'window')
    }
  }

  #stopExpiry (user: MemoryUser): void {
    clearTimeout(user.expiry)
    user.expiry = undefined
    user.deadline = Infinity
  }

  // One process: there are no other nodes to send to.
  deliver (): void {}
  broadcast (): void {}

  post (username: string | undefined, skip: string | undefined, frame: EncodedFrame): void {
    const now = performance.now()
    if (username !== undefined) {
      this.#keep(username, this.#users.get(username) as MemoryUser, frame, now) // the link server checked that it exists
      return
    }
    for (const [name, user] of this.#users) {
      if (name !== skip) {
        this.#keep(name, user, frame, now)
      }
    }
  }

  /** Keeps a message for a user, and delivers it if the user is linked. */
  #keep (username: string, user: MemoryUser, frame: EncodedFrame, now: number): void {
    const { maxMessages, maxAgeMilliseconds } = this.#sessions.replay as ResolvedReplay
    const mailbox = user.mailbox as Mailbox
    const number = mailbox.add(frame, now, maxMessages, maxAgeMilliseconds)
    this.#keeping.add(mailbox)
    if (user.generation !== undefined) {
      (this.#sink as BackendSink).deliver(username, frame, number)
    }
  }

  confirm (username: string, generation: number, number: number): void {
    const user = this.#users.get(username)
    if (user?.generation === generation) {
      (user.mailbox as Mailbox).confirm(number)
    }
  }

  async closeNode (): Promise<void> {
    for (const username of [...this.#users.keys()]) {
      const user = this.#users.get(username)
      if (user !== undefined) { // a leave listener may have kicked it
        this.#leave(username, user, 'close')
      }
    }
  }

  async stop (): Promise<void> {
    clearInterval(this.#sweep)
    for (const user of this.#users.values()) {
      this.#stopExpiry(user)
    }
  }

  #apply (change: Change): void {
    (this.#sink as BackendSink).apply(change)
  }
}
