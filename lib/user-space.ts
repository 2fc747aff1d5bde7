import type { LinkUser } from '../types/index.js'
import { EncodedFrame, userFrames } from './frames.js'

/** Where a linked user is linked: the node holding its connection, and the generation of the link. */
export interface UserLink {
  node: string
  generation: number
}

/** One user of the user space as this node knows it. */
export class MirroredUser {
  link: UserLink | undefined = undefined
  /** Where the user is in join order, as the backend numbers it. */
  readonly order: number
  /**
   * Its `krmx/joined` frame and then its `krmx/linked` frame, made once, in one buffer: every link sends them to
   * the linking connection. `joinedEnd` is where the first ends.
   */
  readonly frames: Buffer
  readonly joinedEnd: number
  /** The JSON of the data its last link attached, if any. */
  data: string | undefined = undefined

  constructor (username: string, order: number) {
    this.order = order
    const { bytes, joinedEnd } = userFrames(username)
    this.frames = bytes
    this.joinedEnd = joinedEnd
  }

  /** Its `krmx/joined` frame alone. */
  get joined (): EncodedFrame {
    return new EncodedFrame(this.frames.subarray(0, this.joinedEnd))
  }

  /** Its `krmx/linked` frame alone. */
  get linked (): EncodedFrame {
    return new EncodedFrame(this.frames.subarray(this.joinedEnd))
  }
}

/**
 * This node's mirror of the user space: who exists, in join order, and where each linked user is
 * linked. It changes only by the changes the backend hands back, applied in the one order of the
 * user space, so that it answers `getUsers()` synchronously on every node. Usernames are `Map`
 * keys, so `__proto__` is an ordinary user.
 */
export class UserSpace {
  readonly #users = new Map<string, MirroredUser>()

  get size (): number {
    return this.#users.size
  }

  get (username: string): MirroredUser | undefined {
    return this.#users.get(username)
  }

  join (username: string, order: number): MirroredUser {
    const user = new MirroredUser(username, order)
    this.#users.set(username, user)
    return user
  }

  leave (username: string): void {
    this.#users.delete(username)
  }

  /** Every user in join order, with its mirrored state. */
  entries (): IterableIterator<[string, MirroredUser]> {
    return this.#users.entries()
  }

  /** Every user in join order. */
  users (): LinkUser[] {
    const users: LinkUser[] = []
    for (const [username, user] of this.#users) {
      users.push({ username, isLinked: user.link !== undefined })
    }
    return users
  }

  usernames (): string[] {
    return [...this.#users.keys()]
  }

  /** Puts the users in join order again, after a snapshot added users that joined before others. */
  sort (): void {
    const users = [...this.#users].sort(([, a], [, b]) => a.order - b.order)
    this.#users.clear()
    for (const [username, user] of users) {
      this.#users.set(username, user)
    }
  }
}
