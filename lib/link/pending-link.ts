import type { EncodedFrame, LinkSession } from '../frames.js'
import type { LocalLink } from '../space/local-links.js'
import type { Connection } from '../transport/connection.js'

/**
 * One link request of a connection, from its validation until its link is applied or refused: the one record
 * that says a link is pending (`Connection.pending` while its frames wait; the link flow's map by token while
 * it is committed).
 */
export class PendingLink {
  readonly connection: Connection
  readonly username: string
  /** The session extension its request asked for, if it did. */
  readonly session: LinkSession | undefined
  /** The token of its claim, once the backend reserved the user for it. */
  token: string | undefined = undefined
  /** Stops its authentication, while it is authenticated. */
  cancel: (() => void) | undefined = undefined
  /** The link it made, once applied: a late `reject` or `markAsync` undoes that link only. */
  made: LocalLink | undefined = undefined
  /**
   * With replay on, while it is committed: the messages (frame and number pairs) that reached this node for its
   * user before its link was applied; they follow its replay.
   */
  early: Array<EncodedFrame | number> | undefined = undefined

  constructor (connection: Connection, username: string, session: LinkSession | undefined) {
    this.connection = connection
    this.username = username
    this.session = session
  }
}
