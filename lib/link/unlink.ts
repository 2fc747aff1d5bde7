import { type Commit, CommitRefused, type UnlinkCause } from '../backend/backend.js'
import {
  FST_LINK_CLUSTER_UNAVAILABLE,
  FST_LINK_SERVER_FULL,
  FST_LINK_TOO_MANY_ROOMS,
  FST_LINK_UNKNOWN_USER,
  FST_LINK_USER_EXISTS,
  FST_LINK_USER_NOT_LINKED
} from '../errors.js'
import type { Parts } from '../parts.js'
import { inRoom } from '../rooms/in-room.js'
import type { Connection } from '../transport/connection.js'

/**
 * Asks the backend to end the link of `connection`, fenced by its generation: if the link ended already, nothing
 * happens. A change a shared backend commits later holds the frames of the connection meanwhile, as a link request
 * does, so that none is handled as its user's after it asked to unlink.
 */
export function unlinkConnection (connection: Connection, cause: UnlinkCause): void {
  const link = connection.link as NonNullable<Connection['link']>
  const username = link.username
  const commit = connection.room.store.unlink(username, link.generation, cause)
  holdUntilApplied(connection.room.parts, connection, link, commit.then(undefined, (err: unknown) => {
    connection.log.warn({ err, username }, 'the unlink of a connection could not be committed')
  }))
}

/** The user of `connection` leaves, as it asked. */
export function leaveConnection (connection: Connection): void {
  const link = connection.link as NonNullable<Connection['link']>
  const username = link.username
  const { parts, store, name } = connection.room
  const commit = codedCommit(parts, store.leave(username, 'client'), 'leave', username, name)
  holdUntilApplied(parts, connection, link, commit.then(undefined, () => {})) // codedCommit logged it
}

/** The connection is still on `link` after asking to end it: the change is committed later, and its frames wait for it. */
function holdUntilApplied (parts: Parts, connection: Connection, link: Connection['link'], settled: Promise<void>): void {
  if (connection.link === link) {
    parts.gateway.hold(connection, settled)
  }
}

/**
 * The coded error of a refused commit, for the method that asked; the promise is marked as handled (an
 * application that ignores it does not crash the process) and its failure logged.
 */
export function codedCommit (parts: Parts, commit: Commit, action: string, username: string, room: string): Promise<void> {
  const coded = commit.then(undefined, (err: unknown) => {
    throw codedError(parts, err, action, username, room)
  })
  coded.then(undefined, (err: unknown) => parts.log.warn(inRoom({ err, username }, room), `could not ${action}`))
  return coded
}

function codedError (parts: Parts, err: unknown, action: string, username: string, room: string): Error {
  switch ((err as CommitRefused).refusal) {
    case 'exists':
      return new FST_LINK_USER_EXISTS(username)
    case 'full':
      return new FST_LINK_SERVER_FULL(username, parts.options.maxUsers)
    case 'too-many-rooms':
      return new FST_LINK_TOO_MANY_ROOMS(room, parts.options.maxRooms)
    case 'unknown':
      return new FST_LINK_UNKNOWN_USER(action, username)
    case 'not-linked':
      return new FST_LINK_USER_NOT_LINKED(action, username)
    default:
      return new FST_LINK_CLUSTER_UNAVAILABLE(action, (err as Error).message)
  }
}
