import assert from 'node:assert/strict'
import fc from 'fast-check'
import { Redis } from 'ioredis'
import t from 'tap'
import { claimScript, leaveScript, linkScript, unlinkScript } from '../../lib/backend/redis/scripts.js'
import { type ClientCommand, liveClients, node, probeLinkedUsers, runClientCommand, settleCluster } from '../helpers/cluster.js'
import type { Client } from '../helpers/clients.js'
import { RedisServer } from '../helpers/redis-server.js'
import { ReplyCutter } from '../helpers/reply-cutter.js'

// Randomized runs with faults, in the style of test/cluster/fuzz.test.ts: three nodes reach one Redis through
// proxies of their own, and while clients link, unlink, leave and drop, the proxies lose the reply of a link, claim,
// unlink or leave script after it ran, or cut a node off Redis for a while. After each run, once the faults are over
// and the cluster settled: no user is linked without a connection anywhere, every view equals getUsers(), Redis
// links exactly the linked users, each in the set of the node it is linked to, and holds no key of a user or node
// that is gone.
// npm test makes 3 runs; npm run soak:cluster-faults makes 30 (CLUSTER_FAULT_RUNS sets how many; CLUSTER_FAULT_SEED and
// CLUSTER_FAULT_PATH replay a failure that fast-check reported).
const runs = Number(process.env.CLUSTER_FAULT_RUNS ?? 3)
const usernames = ['u0', 'u1', 'u2', 'u3']
const scripts = [linkScript, claimScript, unlinkScript, leaveScript]
// A run takes a few seconds, up to about 15 while a cut settles: more than the suite's 60 s per file.
t.setTimeout(Math.max(60_000, runs * 45_000))
const redis = await RedisServer.start(t)
const admin = new Redis(redis.url)
t.teardown(() => admin.disconnect())
let namespaces = 0

type Command =
  | ClientCommand
  | { kind: 'cutReply', node: number, script: number }
  | { kind: 'blackout', node: number, milliseconds: number }

const clientIndex = fc.integer({ min: 0, max: 4 })
const nodeIndex = fc.integer({ min: 0, max: 2 })
const command: fc.Arbitrary<Command> = fc.oneof(
  { weight: 6, arbitrary: fc.record({ kind: fc.constant('link' as const), client: clientIndex, node: nodeIndex, username: fc.constantFrom(...usernames) }) },
  { weight: 3, arbitrary: fc.record({ kind: fc.constantFrom('unlink' as const, 'leave' as const, 'drop' as const), client: clientIndex }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('cutReply' as const), node: nodeIndex, script: fc.integer({ min: 0, max: scripts.length - 1 }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('blackout' as const), node: nodeIndex, milliseconds: fc.integer({ min: 50, max: 600 }) }) }
)

t.test(`${runs} random runs on three nodes with lost replies and cuts leave no user linked without a connection`, async t => {
  let commandsRun = 0
  let faults = 0
  await fc.assert(fc.asyncProperty(fc.array(command, { minLength: 20, maxLength: 40 }), async commands => {
    const namespace = `faults-${++namespaces}`
    const proxies = await Promise.all([0, 1, 2].map(async () => ReplyCutter.start(t, redis.port)))
    const nodes = await Promise.all(['a', 'b', 'c'].map((id, index) =>
      node(t, redis, id, { linkTimeoutMilliseconds: 0, cluster: { redis: proxies[index].url } }, namespace)))
    const clients: Array<Client | undefined> = []
    try {
      for (const step of commands) {
        commandsRun++
        if (step.kind === 'cutReply') {
          faults++
          proxies[step.node].cutReplyTo(scripts[step.script])
        } else if (step.kind === 'blackout') {
          faults++
          proxies[step.node].blackout(step.milliseconds)
        } else {
          await runClientCommand(nodes, clients, step)
        }
        await new Promise(resolve => setTimeout(resolve, 10)) // the faults need commands in flight to hit
      }
      for (const proxy of proxies) {
        proxy.disarm()
      }
      // Every cut is over, and the connections it cut are back (what was published meanwhile is lost: pub/sub is at
      // most once); then the cluster settles (a lost reply is read back, an owed unlink is paid at a heartbeat).
      const quiet = Math.max(...proxies.map(proxy => proxy.darkUntil)) + 1_000
      await new Promise(resolve => setTimeout(resolve, Math.max(0, quiet - Date.now())))
      await settleCluster(nodes, () => liveClients(clients), 300, 15_000)
      const users = nodes[0].linkServer.getUsers()
      const linked = users.filter(user => user.isLinked).map(user => user.username)
      await probeLinkedUsers(nodes, liveClients(clients))

      // Redis holds links only of users that exist, each in the set of the node it is linked to, and no node set
      // holds a user that is not linked to it.
      const inRedis = await admin.zrange(`{${namespace}}:users`, 0, -1)
      assert.deepEqual(inRedis, users.map(user => user.username), 'Redis holds the users every node shows, in their order')
      const links = await admin.hgetall(`{${namespace}}:links`)
      assert.deepEqual(Object.keys(links).sort(), [...linked].sort(), 'Redis links exactly the linked users')
      for (const id of ['a', 'b', 'c']) {
        const members = (await admin.smembers(`{${namespace}}:node:${id}`)).sort()
        const expected = Object.entries(links).filter(([, link]) => link.startsWith(`${id} `)).map(([user]) => user).sort()
        assert.deepEqual(members, expected, `the users of node ${id}`)
      }
      // Every key is one of the user space's, of a live node (a node set is deleted once empty) or of an existing user;
      // a claim whose answer was lost while its node was cut off longer than it retries expires by itself (its TTL).
      const live = new Set(['a', 'b', 'c'])
      const existing = new Set(users.map(user => user.username))
      const stray: string[] = []
      for (const key of await admin.keys(`{${namespace}}:*`)) {
        const [, kind, name] = /^\{[^}]+\}:([a-z]+)(?::(.*))?$/.exec(key) ?? []
        const fits = name === undefined
          ? ['epoch', 'seq', 'users', 'links', 'nodes', 'log', 'expiry', 'data'].includes(kind)
          : (kind === 'node' || kind === 'life') ? live.has(name) : kind === 'claim' ? await admin.pttl(key) > 0 : kind === 'mail' && existing.has(name)
        if (!fits) {
          stray.push(key)
        }
      }
      assert.deepEqual(stray, [], 'Redis holds only keys of the user space, its live nodes and its users')
    } finally {
      for (const client of clients) {
        client?.ws.terminate()
      }
      await Promise.all(nodes.map(app => app.close()))
    }
  }), { numRuns: runs, ...(process.env.CLUSTER_FAULT_SEED === undefined ? {} : { seed: Number(process.env.CLUSTER_FAULT_SEED), path: process.env.CLUSTER_FAULT_PATH, endOnFailure: true }) })
  t.ok(commandsRun >= runs * 20, `${commandsRun} commands were run, ${faults} of them faults`)
})
