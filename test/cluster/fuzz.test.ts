import assert from 'node:assert/strict'
import fc from 'fast-check'
import t from 'tap'
import { type ClientCommand, liveClients, node, probeLinkedUsers, replay, runClientCommand, settleCluster } from '../helpers/cluster.js'
import type { Client } from '../helpers/clients.js'
import { RedisServer } from '../helpers/redis-server.js'

// Randomized runs against three nodes on one Redis, in the style of test/robustness/fuzz.test.ts: clients link,
// unlink, leave and drop on any node while the user API acts from any node; after each run, once the
// cluster settles, every linked user has exactly one connection in the whole cluster, and every view
// (each node's getUsers() and each linked client's replayed frames) is the same, join order included.
// CLUSTER_FUZZ_RUNS=200 npx tap --disable-coverage test/cluster/fuzz.test.ts runs it longer.
const runs = Number(process.env.CLUSTER_FUZZ_RUNS ?? 15)
const usernames = ['u0', 'u1', 'u2', 'u3']
const redis = await RedisServer.start(t)
let namespaces = 0

type Command = ClientCommand | { kind: 'kick' | 'serverUnlink' | 'join', node: number, username: string }

const clientIndex = fc.integer({ min: 0, max: 4 })
const nodeIndex = fc.integer({ min: 0, max: 2 })
const username = fc.constantFrom(...usernames)
const command: fc.Arbitrary<Command> = fc.oneof(
  { weight: 6, arbitrary: fc.record({ kind: fc.constant('link' as const), client: clientIndex, node: nodeIndex, username }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constantFrom('unlink' as const, 'leave' as const, 'drop' as const), client: clientIndex }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constantFrom('kick' as const, 'serverUnlink' as const, 'join' as const), node: nodeIndex, username }) }
)

t.test(`${runs} random runs on three nodes keep one connection per user and one view of the user space`, async t => {
  let commandsRun = 0
  await fc.assert(fc.asyncProperty(fc.array(command, { minLength: 20, maxLength: 40 }), async commands => {
    const namespace = `fuzz-${++namespaces}`
    const nodes = await Promise.all(['a', 'b', 'c'].map(id => node(t, redis, id, { linkTimeoutMilliseconds: 0 }, namespace)))
    const clients: Array<Client | undefined> = []
    try {
      for (const step of commands) {
        commandsRun++
        if (step.kind === 'kick' || step.kind === 'serverUnlink' || step.kind === 'join') {
          const server = nodes[step.node].linkServer
          const act = { kick: () => server.kick(step.username), serverUnlink: () => server.unlink(step.username), join: () => server.join(step.username) }[step.kind]
          try {
            await act().catch(() => {}) // a conflict only Redis saw
          } catch {} // a misuse this node saw
        } else {
          await runClientCommand(nodes, clients, step as ClientCommand)
        }
      }
      await settleCluster(nodes, () => liveClients(clients), 100)
      const users = nodes[0].linkServer.getUsers()
      const probes = await probeLinkedUsers(nodes, liveClients(clients))

      // Every linked client was told exactly the user space the nodes hold.
      for (const [client, received] of probes) {
        if (received.length === 1) {
          assert.deepEqual(replay(client.frames().filter(frame => frame.type !== 'probe')), users, `the view of ${received[0]}`)
        }
      }
    } finally {
      for (const client of clients) {
        client?.ws.terminate()
      }
      await Promise.all(nodes.map(app => app.close()))
    }
  }), { numRuns: runs, ...(process.env.CLUSTER_FUZZ_SEED === undefined ? {} : { seed: Number(process.env.CLUSTER_FUZZ_SEED), path: process.env.CLUSTER_FUZZ_PATH, endOnFailure: true }) })
  t.ok(commandsRun >= runs * 20, `${commandsRun} commands were run`)
})
