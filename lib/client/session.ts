import type { LinkSession } from './options.js'

/**
 * Where the client is in its user's messages (the session extension, docs/protocol.md#the-session-extension): the
 * user's join order, and with replay on the number of the last message handed to the app.
 */
export class SessionCursor {
  #session: LinkSession | undefined

  constructor (session: LinkSession | undefined) {
    this.#session = session
  }

  get session (): LinkSession | undefined {
    return this.#session
  }

  /** The `session` of a link request: where the client is, or `{}` for a client that was never linked. */
  request (): LinkSession | Record<string, never> {
    return this.#session ?? {}
  }

  /**
   * The `session` of `krmx/accepted`: the user and where its messages start. Answers `-1` for a server that does not
   * speak the extension, else how many messages the client lost since its last one (the server's bounds dropped them).
   */
  accepted (session: { user?: unknown, last?: unknown } | undefined): number {
    const before = this.#session
    if (typeof session?.user !== 'number') {
      this.#session = undefined
      return -1
    }
    const last = typeof session.last === 'number' ? session.last : undefined
    this.#session = { user: session.user, last }
    const gap = before?.user === session.user && before.last !== undefined && last !== undefined ? last - before.last : 0
    return Math.max(gap, 0)
  }

  /**
   * A message's number (`seq`): `undefined` for a message the client had already; else how many were lost before it
   * (numbers come without gaps), or `-1` when messages are not numbered (its `seq`, if any, is the application's).
   */
  next (seq: unknown): number | undefined {
    const last = this.#session?.last
    if (last === undefined || typeof seq !== 'number') {
      return -1
    }
    if (seq <= last) {
      return undefined
    }
    this.#session = { user: (this.#session as LinkSession).user, last: seq }
    return seq - last - 1
  }
}
