import assert from 'node:assert/strict'
import { once } from 'node:events'
import fc from 'fast-check'
import t from 'tap'
import WebSocket from 'ws'
import { build } from '../helpers/app.js'
import { replay } from '../helpers/cluster.js'
import { Client, urlOf } from '../helpers/clients.js'
import { type RoomsCommand, runRoomsCommand } from '../helpers/rooms-fuzz.js'
import { eventually } from '../helpers/waits.js'

// Randomized runs against one instance with rooms on: six clients, each bound to one of three rooms by its URL, link
// as four usernames (the same username in several rooms), unlink, leave and drop, while the API joins, unlinks and
// kicks in any room; half the runs take linked users over (linkConflict 'takeover'). After each run: in every room, each linked user has exactly one connection, every linked
// client's view is the room's getUsers(); getRooms() and getStats() count what the rooms hold; and once every
// client dropped and every user was kicked, no room is left.
// ROOMS_FUZZ_RUNS=1000 npx tap --disable-coverage test/rooms/fuzz.test.ts runs it longer.
const runs = Number(process.env.ROOMS_FUZZ_RUNS ?? 60)
const rooms = ['r0', 'r1', 'r2']
const usernames = ['u0', 'u1', 'u2', 'u3']
const clientCount = 6
/** The room of client `i`, for its whole life. */
const roomOf = (client: number): string => rooms[client % rooms.length]

type Command = RoomsCommand

const client = fc.integer({ min: 0, max: clientCount - 1 })
const username = fc.constantFrom(...usernames)
const command: fc.Arbitrary<Command> = fc.oneof(
  { weight: 6, arbitrary: fc.record({ kind: fc.constant('link' as const), client, username }) },
  { weight: 3, arbitrary: fc.record({ kind: fc.constantFrom('unlink' as const, 'leave' as const, 'drop' as const), client }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constantFrom('kick' as const, 'serverUnlink' as const, 'join' as const), room: fc.constantFrom(...rooms), username }) }
)

t.test(`${runs} random runs over three rooms keep one connection per user per room, and one view of each room`, async t => {
  let commandsRun = 0
  await fc.assert(fc.asyncProperty(fc.array(command, { minLength: 20, maxLength: 50 }), fc.boolean(), async (commands, takeover) => {
    const app = await build(t, { listen: true, path: '/link/:room', linkConflict: takeover ? 'takeover' : 'reject' })
    const server = app.linkServer
    const clients: Array<Client | undefined> = []
    const open = async (index: number): Promise<Client> => {
      const ws = new WebSocket(urlOf(app, `/link/${roomOf(index)}`))
      ws.on('error', () => {})
      await once(ws, 'open')
      return new Client(ws)
    }
    try {
      for (const step of commands) {
        commandsRun++
        await runRoomsCommand(step, clients, async index => await open(index), () => server)
      }
      // Settled: every open client answered a ping after all it was sent (a takeover may have closed one meanwhile).
      const openClients = (): Array<readonly [Client, number]> => clients.map((client, index) => [client, index] as const)
        .filter((entry): entry is readonly [Client, number] => entry[0] !== undefined && entry[0].ws.readyState === WebSocket.OPEN)
      let live = openClients()
      do {
        live = openClients()
        await Promise.all(live.map(async ([client]) => await client.settle().catch(() => {})))
      } while (openClients().length !== live.length)
      await eventually(() => server.getStats().connections === live.length, () => JSON.stringify(server.getStats()))

      // In every room, each linked user is reached on exactly one connection, and that connection is of the room.
      const probes = new Map<Client, string[]>(live.map(([client]) => [client, []]))
      for (const [client] of live) {
        client.ws.on('message', data => {
          const frame = JSON.parse(data.toString()) as { type: string, payload: string }
          if (frame.type === 'probe') (probes.get(client) as string[]).push(frame.payload)
        })
      }
      const expected: string[] = []
      for (const room of rooms) {
        for (const user of server.room(room).getUsers().filter(user => user.isLinked)) {
          server.room(room).send(user.username, { type: 'probe', payload: `${room}/${user.username}` })
          expected.push(`${room}/${user.username}`)
        }
      }
      await Promise.all(live.map(async ([client]) => await client.settle()))
      assert.deepEqual([...probes.values()].flat().sort(), expected.sort(), 'each linked user of each room has exactly one connection')
      for (const [client, index] of live) {
        const received = probes.get(client) as string[]
        assert.ok(received.length <= 1, 'no connection is linked to two users')
        if (received.length === 1) {
          assert.equal(received[0].split('/')[0], roomOf(index), 'a connection is linked in the room of its URL')
          assert.deepEqual(replay(client.frames().filter(frame => frame.type !== 'probe')), server.room(roomOf(index)).getUsers(),
            `the view of ${received[0]} is its room's`)
        }
      }
      const sizes = rooms.map(room => server.room(room).getUsers())
      assert.deepEqual(await server.getRooms(), rooms.filter((_room, index) => sizes[index].length > 0))
      assert.deepEqual(server.getStats(), {
        connections: live.length,
        users: sizes.flat().length,
        rooms: sizes.filter(users => users.length > 0).length,
        linkedUsers: expected.length,
        invalidMessages: 0
      })

      // Everyone goes: no room is left.
      for (const [client] of live) client.ws.terminate()
      await eventually(() => server.getStats().connections === 0, () => JSON.stringify(server.getStats()))
      for (const room of rooms) {
        for (const { username } of server.room(room).getUsers()) await server.room(room).kick(username)
      }
      assert.deepEqual([await server.getRooms(), server.getStats()], [[], { connections: 0, users: 0, rooms: 0, linkedUsers: 0, invalidMessages: 0 }])
    } finally {
      for (const client of clients) client?.ws.terminate()
      await app.close()
    }
  }), { numRuns: runs, ...(process.env.ROOMS_FUZZ_SEED === undefined ? {} : { seed: Number(process.env.ROOMS_FUZZ_SEED), path: process.env.ROOMS_FUZZ_PATH, endOnFailure: true }) })
  t.ok(commandsRun >= runs * 20, `${commandsRun} commands were run`)
})
