import {
  type Admission,
  type Backend,
  type BackendSink,
  type Change,
  type ClaimResult,
  type Commit,
  CommitRefused,
  type LinkResult
} from './backend.js'

/** The node id of the in-memory backend, the origin of every change. */
export const memoryNodeId = 'local'

const committed: Commit = Promise.resolve()

/** One user: the generation of its link, when it is linked. */
interface MemoryUser {
  generation: number | undefined
}

/**
 * The user space of one process, the default backend. Every commit is applied before it returns, so
 * the link server behaves exactly as it did before there were backends: a change, its frames and its
 * events all happen within the call that made it.
 */
export class MemoryBackend implements Backend {
  readonly nodeId = memoryNodeId
  readonly isLocal = true
  readonly #users = new Map<string, MemoryUser>()
  /** Claimed usernames and the token of their claim. */
  readonly #claims = new Map<string, string>()
  /** The number of the last change, as the Redis backend numbers its log: a link's generation, a join's order. */
  #seq = 0
  #tokens = 0
  #sink: BackendSink | undefined

  async start (sink: BackendSink): Promise<void> {
    this.#sink = sink
  }

  async claim (username: string, admission: Admission): Promise<ClaimResult> {
    const user = this.#users.get(username)
    if (user === undefined && !admission.acceptNewUsers) {
      return { claimed: false, refusal: 'not-accepting-new-users' }
    }
    if (this.#claims.has(username) || user?.generation !== undefined) {
      return { claimed: false, refusal: 'already-linked' }
    }
    if (user === undefined && this.#users.size >= admission.maxUsers) {
      return { claimed: false, refusal: 'full' }
    }
    const token = String(++this.#tokens)
    this.#claims.set(username, token)
    return { claimed: true, isNewUser: user === undefined, token }
  }

  release (username: string, token: string): void {
    if (this.#claims.get(username) === token) {
      this.#claims.delete(username)
    }
  }

  link (username: string, token: string, admission: Admission): LinkResult {
    this.release(username, token)
    const user = this.#users.get(username)
    if (user === undefined && !admission.acceptNewUsers) {
      return { linked: false, refusal: 'not-accepting-new-users' } // the user left while its link was authenticated
    }
    if (user === undefined && this.#users.size >= admission.maxUsers) {
      return { linked: false, refusal: 'full' } // other users were created meanwhile
    }
    const generation = ++this.#seq
    this.#users.set(username, { generation })
    this.#apply({ op: 'link', username, origin: memoryNodeId, node: memoryNodeId, generation, token, isNewUser: user === undefined })
    return { linked: true, generation }
  }

  join (username: string, maxUsers: number): Commit {
    if (this.#users.has(username)) {
      return Promise.reject(new CommitRefused('exists'))
    }
    if (this.#users.size >= maxUsers) {
      return Promise.reject(new CommitRefused('full'))
    }
    this.#users.set(username, { generation: undefined })
    this.#apply({ op: 'join', username, origin: memoryNodeId, order: ++this.#seq })
    return committed
  }

  unlink (username: string, generation: number | undefined): Commit {
    const user = this.#users.get(username)
    if (user?.generation === undefined) {
      return generation === undefined ? Promise.reject(new CommitRefused(user === undefined ? 'unknown' : 'not-linked')) : committed
    }
    if (generation !== undefined && generation !== user.generation) {
      return committed // that link ended already
    }
    const ended = user.generation
    user.generation = undefined
    this.#seq++
    this.#apply({ op: 'unlink', username, origin: memoryNodeId, generation: ended })
    return committed
  }

  leave (username: string): Commit {
    if (!this.#users.has(username)) {
      return Promise.reject(new CommitRefused('unknown'))
    }
    this.#users.delete(username)
    this.#seq++
    this.#apply({ op: 'leave', username, origin: memoryNodeId })
    return committed
  }

  // One process: there are no other nodes to send to.
  deliver (): void {}
  broadcast (): void {}

  async unlinkOwn (): Promise<void> {
    for (const [username, user] of this.#users) {
      if (user.generation !== undefined) {
        await this.unlink(username, user.generation)
      }
    }
  }

  async stop (): Promise<void> {}

  #apply (change: Change): void {
    (this.#sink as BackendSink).apply(change)
  }
}
