import assert from 'node:assert/strict'
import { once } from 'node:events'
import type { FastifyInstance } from 'fastify'
import fc from 'fast-check'
import t from 'tap'
import WebSocket from 'ws'
import { node, replay } from '../helpers/cluster.js'
import { Client } from '../helpers/clients.js'
import { RedisServer } from '../helpers/redis-server.js'
import { type RoomsCommand, runRoomsCommand } from '../helpers/rooms-fuzz.js'
import { eventually } from '../helpers/waits.js'

// Randomized runs against three instances on one Redis, rooms on: six clients, each bound to one of three rooms by
// its URL and to the instance of its first link, link as four usernames, unlink, leave and drop, while the API joins,
// unlinks and kicks in any room from any instance. After each run, once the cluster settles: in every room each
// linked user has exactly one connection in the whole cluster (a probe sent from any instance reaches one connection,
// of that room), and every view of a room (each instance's getUsers() and each linked client's replayed frames) is
// the same, join order included.
// ROOMS_CLUSTER_FUZZ_RUNS=100 npx tap --disable-coverage test/rooms/cluster-fuzz.test.ts runs it longer.
const runs = Number(process.env.ROOMS_CLUSTER_FUZZ_RUNS ?? 8)
const rooms = ['r0', 'r1', 'r2']
const usernames = ['u0', 'u1', 'u2', 'u3']
const clientCount = 6
const roomOf = (client: number): string => rooms[client % rooms.length]
const redis = await RedisServer.start(t)
let namespaces = 0

type Command = RoomsCommand

const clientIndex = fc.integer({ min: 0, max: clientCount - 1 })
const nodeIndex = fc.integer({ min: 0, max: 2 })
const username = fc.constantFrom(...usernames)
const command: fc.Arbitrary<Command> = fc.oneof(
  { weight: 6, arbitrary: fc.record({ kind: fc.constant('link' as const), client: clientIndex, node: nodeIndex, username }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constantFrom('unlink' as const, 'leave' as const, 'drop' as const), client: clientIndex }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constantFrom('kick' as const, 'serverUnlink' as const, 'join' as const), node: nodeIndex, room: fc.constantFrom(...rooms), username }) }
)

/** Every instance's users of every room (each loads the room), and its count of local links, as JSON. */
async function state (nodes: FastifyInstance[]): Promise<string> {
  const views = []
  for (const app of nodes) {
    const view = []
    for (const room of rooms) {
      await app.linkServer.room(room).load()
      view.push(app.linkServer.room(room).getUsers())
    }
    views.push([view, app.linkServer.getStats().linkedUsers])
  }
  return JSON.stringify(views)
}

t.test(`${runs} random runs on three instances and three rooms keep one connection per user per room, and one view of each room`, async t => {
  let commandsRun = 0
  await fc.assert(fc.asyncProperty(fc.array(command, { minLength: 20, maxLength: 40 }), async commands => {
    const namespace = `rooms-fuzz-${++namespaces}`
    const nodes = await Promise.all(['a', 'b', 'c'].map(id => node(t, redis, id, { path: '/link/:room', linkTimeoutMilliseconds: 0 }, namespace)))
    const clients: Array<Client | undefined> = []
    const live = (): Array<[Client, number]> => clients.flatMap((client, index) => client !== undefined && client.ws.readyState === WebSocket.OPEN ? [[client, index] as [Client, number]] : [])
    try {
      for (const step of commands) {
        commandsRun++
        await runRoomsCommand(step, clients, async (index, at) => {
          const ws = new WebSocket(`ws://127.0.0.1:${(nodes[at].server.address() as { port: number }).port}/link/${roomOf(index)}`)
          ws.on('error', () => {})
          await once(ws, 'open')
          return new Client(ws)
        }, at => nodes[at].linkServer)
      }
      // Settled: every instance holds the same rooms, and they stay so after every client answered.
      let settled = ''
      let now = await state(nodes)
      const deadline = Date.now() + 10_000
      while (settled !== now && Date.now() < deadline) {
        settled = now
        await Promise.all(live().map(async ([client]) => await client.settle().catch(() => {})))
        await new Promise(resolve => setTimeout(resolve, 100))
        now = await state(nodes)
      }
      const views = (JSON.parse(now) as Array<[unknown[], number]>).map(([view]) => view)
      assert.deepEqual(views, [views[0], views[0], views[0]], 'every instance has the same users in every room, in the same order')

      // In every room each linked user is reached on exactly one connection, of that room.
      const probes = new Map<Client, string[]>(live().map(([client]) => [client, []]))
      for (const [client] of live()) {
        client.ws.on('message', data => {
          const frame = JSON.parse(data.toString()) as { type: string, payload: string }
          if (frame.type === 'probe') (probes.get(client) as string[]).push(frame.payload)
        })
      }
      const expected: string[] = []
      for (const [index, room] of rooms.entries()) {
        for (const user of nodes[0].linkServer.room(room).getUsers().filter(user => user.isLinked)) {
          nodes[(index + expected.length) % 3].linkServer.room(room).send(user.username, { type: 'probe', payload: `${room}/${user.username}` })
          expected.push(`${room}/${user.username}`)
        }
      }
      await eventually(() => [...probes.values()].flat().length >= expected.length, () => JSON.stringify([...probes.values()]))
      await Promise.all(live().map(async ([client]) => await client.settle()))
      assert.deepEqual([...probes.values()].flat().sort(), expected.sort(), 'each linked user of each room has exactly one connection in the cluster')
      for (const [client, index] of live()) {
        const received = probes.get(client) as string[]
        assert.ok(received.length <= 1, 'no connection is linked to two users')
        if (received.length === 1) {
          assert.equal(received[0].split('/')[0], roomOf(index), 'a connection is linked in the room of its URL')
          assert.deepEqual(replay(client.frames().filter(frame => frame.type !== 'probe')), nodes[0].linkServer.room(roomOf(index)).getUsers(),
            `the view of ${received[0]} is its room's`)
        }
      }
      assert.equal(nodes.reduce((sum, app) => sum + app.linkServer.getStats().linkedUsers, 0), expected.length, 'the instances count as many local links')
      const existing = rooms.filter(room => nodes[0].linkServer.room(room).getUsers().length > 0)
      assert.deepEqual(await nodes[1].linkServer.getRooms(), existing, 'the registry lists the rooms that have users')
    } finally {
      for (const client of clients) client?.ws.terminate()
      await Promise.all(nodes.map(app => app.close()))
    }
  }), { numRuns: runs, ...(process.env.ROOMS_CLUSTER_FUZZ_SEED === undefined ? {} : { seed: Number(process.env.ROOMS_CLUSTER_FUZZ_SEED), path: process.env.ROOMS_CLUSTER_FUZZ_PATH, endOnFailure: true }) })
  t.ok(commandsRun >= runs * 20, `${commandsRun} commands were run`)
})
