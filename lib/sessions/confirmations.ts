import type { LocalLink } from '../space/local-links.js'
import type { Connection } from '../transport/connection.js'

/**
 * With replay on, every `confirmIntervalMilliseconds`: a ping is due after the messages sent to the user, unless
 * one is on its way already. It leaves with the next frames written (`Connection.uncork`); a connection written
 * nothing since the last time is pinged now. Its pong, which names the last message before it, confirms them.
 */
export function confirmSent (connection: Connection, link: LocalLink): void {
  if (link.confirmationDue) {
    askConfirmation(connection, link)
  } else if (link.sent > link.pinged) {
    link.confirmationDue = true
  }
}

/** Pings the connection for the messages sent to its link since the last ping, once the last ping was answered. */
export function askConfirmation (connection: Connection, link: LocalLink): void {
  link.confirmationDue = false
  if (link.sent > link.pinged && link.pinged <= link.confirmed && connection.isOpen) {
    connection.writePending() // after the messages it confirms, which may still wait for the end of the turn
    link.pinged = link.sent
    connection.socket.ping(`${link.generation}:${link.sent}`)
  }
}

/** A pong: the messages up to the one its ping named arrived; returns that number, if it confirms any for `link`. */
export function confirmedBy (link: LocalLink, data: Buffer): number | undefined {
  const text = data.toString()
  const colon = text.indexOf(':')
  if (colon === -1 || text.slice(0, colon) !== String(link.generation)) {
    return undefined // a heartbeat's pong, or one for an earlier link of this connection
  }
  const number = Number(text.slice(colon + 1))
  if (!(number > link.confirmed && number <= link.pinged)) {
    return undefined // not a number this server asked to confirm
  }
  link.confirmed = number
  return number
}
