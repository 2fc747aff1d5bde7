import assert from 'node:assert/strict'
import { once } from 'node:events'
import fc from 'fast-check'
import type { FastifyInstance } from 'fastify'
import t from 'tap'
import WebSocket from 'ws'
import { node, replay } from './cluster-helper.js'
import { Client, eventually, version } from './helper.js'
import { RedisServer } from './redis-server.js'

// Randomized runs against three nodes on one Redis, in the style of test/fuzz.test.ts: clients link,
// unlink, leave and drop on any node while the user API acts from any node; after each run, once the
// cluster settles, every linked user has exactly one connection in the whole cluster, and every view
// (each node's getUsers() and each linked client's replayed frames) is the same, join order included.
// CLUSTER_FUZZ_RUNS=200 npx tap --disable-coverage test/cluster-fuzz.test.ts runs it longer.
const runs = Number(process.env.CLUSTER_FUZZ_RUNS ?? 15)
const usernames = ['u0', 'u1', 'u2', 'u3']
const redis = await RedisServer.start(t)
let namespaces = 0

type Command =
  | { kind: 'link', client: number, node: number, username: string }
  | { kind: 'unlink' | 'leave' | 'drop', client: number }
  | { kind: 'kick' | 'serverUnlink' | 'join', node: number, username: string }

const clientIndex = fc.integer({ min: 0, max: 4 })
const nodeIndex = fc.integer({ min: 0, max: 2 })
const username = fc.constantFrom(...usernames)
const command: fc.Arbitrary<Command> = fc.oneof(
  { weight: 6, arbitrary: fc.record({ kind: fc.constant('link' as const), client: clientIndex, node: nodeIndex, username }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constantFrom('unlink' as const, 'leave' as const, 'drop' as const), client: clientIndex }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constantFrom('kick' as const, 'serverUnlink' as const, 'join' as const), node: nodeIndex, username }) }
)

async function open (app: FastifyInstance): Promise<Client> {
  const ws = new WebSocket(`ws://127.0.0.1:${(app.server.address() as { port: number }).port}/`)
  ws.on('error', () => {})
  await once(ws, 'open')
  return new Client(ws)
}

t.test(`${runs} random runs on three nodes keep one connection per user and one view of the user space`, async t => {
  let commandsRun = 0
  await fc.assert(fc.asyncProperty(fc.array(command, { minLength: 20, maxLength: 40 }), async commands => {
    const namespace = `fuzz-${++namespaces}`
    const nodes = await Promise.all(['a', 'b', 'c'].map(id => node(t, redis, id, { linkTimeoutMilliseconds: 0 }, namespace)))
    const clients: Array<Client | undefined> = []
    try {
      for (const step of commands) {
        commandsRun++
        if (step.kind === 'link') {
          clients[step.client] ??= await open(nodes[step.node])
          ;(clients[step.client] as Client).send({ type: 'krmx/link', payload: { username: step.username, version } })
        } else if (step.kind === 'unlink' || step.kind === 'leave') {
          clients[step.client]?.send({ type: `krmx/${step.kind}` })
        } else if (step.kind === 'drop') {
          clients[step.client]?.ws.terminate()
          clients[step.client] = undefined
        } else {
          const call = step as Extract<Command, { node: number, username: string, kind: 'kick' | 'serverUnlink' | 'join' }>
          const server = nodes[call.node].linkServer
          const act = { kick: () => server.kick(call.username), serverUnlink: () => server.unlink(call.username), join: () => server.join(call.username) }[call.kind]
          try {
            await act().catch(() => {}) // a conflict only Redis saw
          } catch {} // a misuse this node saw
        }
      }
      const live = clients.filter((client): client is Client => client !== undefined && client.ws.readyState === WebSocket.OPEN)
      // Settled: every node has the same user list, and it stays so for 100 ms (frames that waited behind
      // a change being committed are handled after it, so one round of answers is not enough).
      const state = (): string => JSON.stringify(nodes.map(app => [app.linkServer.getUsers(), app.linkServer.getStats().linkedUsers]))
      const same = (): boolean => nodes.every(app => JSON.stringify(app.linkServer.getUsers()) === JSON.stringify(nodes[0].linkServer.getUsers()))
      let settled = ''
      while (settled !== state()) {
        settled = state()
        await Promise.all(live.map(client => client.settle()))
        await eventually(same, state)
        await new Promise(resolve => setTimeout(resolve, 100))
      }
      const users = nodes[0].linkServer.getUsers()
      const linked = users.filter(user => user.isLinked).map(user => user.username)

      // One connection per linked user in the whole cluster: a message to it, sent from a node it is not
      // necessarily on, reaches exactly one connection, and no connection is linked to anyone else.
      const probes = new Map<Client, string[]>(live.map(client => [client, []]))
      for (const client of live) {
        client.ws.on('message', data => {
          const frame = JSON.parse(data.toString()) as { type: string, payload: string }
          if (frame.type === 'probe') {
            (probes.get(client) as string[]).push(frame.payload)
          }
        })
      }
      for (const [index, user] of linked.entries()) {
        nodes[index % 3].linkServer.send(user, { type: 'probe', payload: user })
      }
      await eventually(() => [...probes.values()].flat().length >= linked.length, () => JSON.stringify([...probes.values()]))
      await Promise.all(live.map(client => client.settle()))
      assert.deepEqual([...probes.values()].flat().sort(), [...linked].sort(), 'each linked user has exactly one connection in the cluster')
      assert.ok([...probes.values()].every(received => received.length <= 1), 'no connection is linked to two users')
      assert.equal(nodes.reduce((sum, app) => sum + app.linkServer.getStats().linkedUsers, 0), linked.length, `the nodes count as many local links: ${JSON.stringify(nodes.map(app => [app.linkServer.getStats(), app.linkServer.getUsers()]))}`)

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
