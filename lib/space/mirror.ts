import type { LinkUser } from '../../types/index.js'
import { EncodedFrame, userFrames } from '../frames.js'
import type { Connection } from '../transport/connection.js'

/** Where a linked user is linked: the node holding its connection, and the generation of the link. */
export interface UserLink {
  node: string
  generation: number
}

/** One user of the user space as this node knows it. */
export class MirroredUser {
  /** Where it is linked; set through `Mirror.setLink` only, which keeps the user list right. */
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
  /** The edition of the user list its frames are in, if any (see `Mirror.list`). */
  listedIn = -1

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

  /** Its frames in the user list: `krmx/joined`, and `krmx/linked` if it is linked. */
  get listFrames (): number {
    return this.link === undefined ? 1 : 2
  }

  get listBytes (): number {
    return this.link === undefined ? this.joinedEnd : this.frames.length
  }
}

/** The user list as the frames of one write, and how many frames it holds. */
export interface UserList {
  bytes: Buffer
  frames: number
}

/**
 * This node's mirror of the user space: who exists, in join order, and where each linked user is
 * linked. It changes only by the changes the backend hands back, applied in the one order of the
 * user space, so that it answers `getUsers()` synchronously on every node. Usernames are `Map`
 * keys, so `__proto__` is an ordinary user.
 *
 * It keeps the user list that every link sends (see `list`) as one buffer, shared by every link until a
 * listed user changes.
 */
export class Mirror {
  readonly #users = new Map<string, MirroredUser>()
  /** Told when the first user joins (`true`) and when the last one leaves (`false`). */
  readonly #occupied: (occupied: boolean) => void
  /** The user list, as far as it is made, with room to grow; `undefined` when it must be made again. */
  #list: Buffer | undefined = undefined
  #listLength = 0
  #listFrames = 0
  /** Which edition of the list `#list` is: a user's `listedIn` says whether its frames are in it. */
  #edition = 0
  /** The users that joined since the list was last made or extended, in join order. */
  readonly #unlisted: MirroredUser[] = []

  get size (): number {
    return this.#users.size
  }

  get (username: string): MirroredUser | undefined {
    return this.#users.get(username)
  }

  constructor (occupied: (occupied: boolean) => void = () => {}) {
    this.#occupied = occupied
  }

  join (username: string, order: number): MirroredUser {
    const user = new MirroredUser(username, order)
    this.#users.set(username, user)
    if (this.#list !== undefined) {
      this.#unlisted.push(user)
    }
    if (this.#users.size === 1) {
      this.#occupied(true)
    }
    return user
  }

  /** Links or unlinks `user`. */
  setLink (user: MirroredUser, link: UserLink | undefined): void {
    this.#changed(user)
    user.link = link
  }

  leave (username: string): void {
    this.#users.delete(username)
    this.#invalidate()
    if (this.#users.size === 0) {
      this.#occupied(false)
    }
  }

  /**
   * Every user's `krmx/joined` and each linked one's `krmx/linked`, in join order, as one buffer: the frames a
   * linking connection is sent. It is made once and extended as users join (a link storm only appends), and
   * made again only after a user in it changed, so that the links in between share one buffer and copy no
   * frames. What was handed out is never written again: the list grows past it, or into a new buffer.
   */
  list (): UserList {
    if (this.#list === undefined) {
      let length = 0
      for (const user of this.#users.values()) {
        length += user.listBytes
      }
      // room for the joins of a storm to come, which only append
      this.#list = Buffer.allocUnsafeSlow(4096 + length + (length >> 2))
      this.#listLength = this.#listFrames = 0
      this.#append(this.#users.values())
    } else if (this.#unlisted.length > 0) {
      this.#append(this.#unlisted)
      this.#unlisted.length = 0
    }
    return { bytes: this.#list.subarray(0, this.#listLength), frames: this.#listFrames }
  }

  #append (users: Iterable<MirroredUser>): void {
    let list = this.#list as Buffer
    for (const user of users) {
      const length = user.listBytes
      if (this.#listLength + length > list.length) {
        const grown = Buffer.allocUnsafeSlow(Math.max(list.length * 2, this.#listLength + length))
        list.copy(grown, 0, 0, this.#listLength)
        list = this.#list = grown
      }
      this.#listLength += user.frames.copy(list, this.#listLength, 0, length)
      this.#listFrames += user.listFrames
      user.listedIn = this.#edition
    }
  }

  /** A user changes: if it is in the list, the list is made again when next asked for. */
  #changed (user: MirroredUser): void {
    if (this.#list !== undefined && user.listedIn === this.#edition) {
      this.#invalidate()
    }
  }

  #invalidate (): void {
    this.#list = undefined
    this.#unlisted.length = 0
    this.#edition++
  }

  /**
   * Tells a connection that just linked who is there: `krmx/joined` for every user, and `krmx/linked` for each
   * linked one, in join order. Without compression it is one write of the user list, a buffer shared by every link
   * until a user in it changes (`list`): a write per frame, 2n of them for n users, was most of what a link cost in
   * the storm scenario of `npm run bench`, and a copy of the list per link most of the memory a link storm left behind.
   */
  sendTo (connection: Connection): void {
    if (!connection.isDirect) {
      for (const user of this.#users.values()) {
        connection.send(user.joined)
        if (user.link !== undefined) {
          connection.send(user.linked)
        }
      }
      return
    }
    const { bytes, frames } = this.list()
    connection.sendConcatenated(bytes, frames)
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
    this.#invalidate()
  }
}
