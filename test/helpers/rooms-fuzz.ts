import type { LinkServer } from '../../index.js'
import type { Client } from './clients.js'
import { version } from './frames.js'

/** What a randomized rooms run does: a client (bound to a room by its URL) links, unlinks, leaves or drops; the API acts on a room. */
export type RoomsCommand =
  | { kind: 'link', client: number, node?: number, username: string }
  | { kind: 'unlink' | 'leave' | 'drop', client: number }
  | { kind: 'kick' | 'serverUnlink' | 'join', node?: number, room: string, username: string }

/**
 * Runs one command of a randomized rooms run (test/rooms/fuzz.test.ts, test/rooms/cluster-fuzz.test.ts): `clients[i]`
 * is opened by `open` on its first link (on the instance `node`), and forgotten when it drops; the API acts on the
 * link server of the instance `node` (0 by default), and its misuses and refusals are part of the run.
 */
export async function runRoomsCommand (
  step: RoomsCommand, clients: Array<Client | undefined>, open: (client: number, node: number) => Promise<Client>, server: (node: number) => LinkServer
): Promise<void> {
  if (step.kind === 'link') {
    clients[step.client] ??= await open(step.client, step.node ?? 0)
    ;(clients[step.client] as Client).send({ type: 'krmx/link', payload: { username: step.username, version } })
  } else if ('client' in step) {
    if (step.kind === 'drop') {
      clients[step.client]?.ws.terminate()
      clients[step.client] = undefined
    } else {
      clients[step.client]?.send({ type: `krmx/${step.kind}` })
    }
  } else {
    const room = server(step.node ?? 0).room(step.room)
    const act = { kick: () => room.kick(step.username), serverUnlink: () => room.unlink(step.username), join: () => room.join(step.username) }[step.kind]
    try {
      await act().catch(() => {}) // a conflict only Redis saw
    } catch {} // a misuse this instance saw: the user is not there, is not linked, or exists
  }
}
