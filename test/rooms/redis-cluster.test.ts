import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Cluster, Redis } from 'ioredis'
import t from 'tap'
import { build } from '../helpers/app.js'
import { connect } from '../helpers/clients.js'
import { replay } from '../helpers/cluster.js'
import { frames } from '../helpers/frames.js'
import { RedisServer } from '../helpers/redis-server.js'

const { accepted, joined, linked } = frames

// A Redis Cluster of 3 masters on loopback, each holding a third of the slots. With rooms on, each room's keys are
// under a hash tag of its own, so the rooms spread over the shards; the instances' own keys stay under {namespace}.
t.test('rooms spread over the 3 masters of a Redis Cluster: each room on the shard of its own tag, served by 2 instances', async t => {
  const directory = mkdtempSync(join(tmpdir(), 'redis-cluster-'))
  t.teardown(() => rmSync(directory, { recursive: true, force: true }))
  const masters: RedisServer[] = []
  const admins: Redis[] = []
  for (let i = 0; i < 3; i++) {
    const server = await RedisServer.start(t, ['--cluster-enabled', 'yes', '--cluster-announce-ip', '127.0.0.1', '--cluster-config-file', join(directory, `nodes-${i}.conf`)])
    const admin = new Redis(server.url)
    t.teardown(() => admin.disconnect())
    masters.push(server)
    admins.push(admin)
  }
  const ranges = [['0', '5460'], ['5461', '10922'], ['10923', '16383']]
  for (let i = 0; i < 3; i++) {
    await admins[i].call('CLUSTER', 'ADDSLOTSRANGE', ...ranges[i])
    if (i > 0) {
      await admins[0].call('CLUSTER', 'MEET', '127.0.0.1', String(masters[i].port))
    }
  }
  const deadline = Date.now() + 10_000
  let states: string[] = []
  while (states.length === 0 || !states.every(state => state.includes('cluster_state:ok') && state.includes('cluster_known_nodes:3'))) {
    if (Date.now() > deadline) {
      throw new Error(`the cluster did not form: ${states.join(' | ')}`)
    }
    await new Promise(resolve => setTimeout(resolve, 100))
    states = await Promise.all(admins.map(async admin => await admin.call('CLUSTER', 'INFO') as string))
  }
  const clients: Cluster[] = []
  for (let i = 0; i < 2; i++) {
    const client = new Cluster([{ host: '127.0.0.1', port: masters[0].port }])
    t.teardown(() => client.disconnect())
    await new Promise(resolve => client.once('ready', resolve)) // listened to before it can be ready
    clients.push(client)
  }
  const path = '/tables/:room'
  const [a, b] = await Promise.all(['a', 'b'].map(async (nodeId, i) =>
    await build(t, { listen: true, path, cluster: { redis: clients[i], namespace: 'tables', nodeId, nodeTimeoutMilliseconds: 2_000 } })))

  // Rooms whose tags are on each of the 3 masters.
  const shardOf = async (room: string): Promise<number> => {
    const slot = await admins[0].call('CLUSTER', 'KEYSLOT', `{tables:${room}}`) as number
    return ranges.findIndex(([from, to]) => slot >= Number(from) && slot <= Number(to))
  }
  const perShard: string[][] = [[], [], []]
  for (let i = 0; perShard.some(list => list.length < 2); i++) {
    const shard = await shardOf(`t${i}`)
    if (perShard[shard].length < 2) {
      perShard[shard].push(`t${i}`)
    }
  }
  const rooms = perShard.flat()
  const shards = await Promise.all(rooms.map(shardOf))
  t.strictSame(new Set(shards).size, 3, `the rooms ${rooms.join(', ')} are on all 3 masters (${shards.join(', ')})`)

  const seen = []
  for (const room of rooms) {
    const ann = await connect(a, `/tables/${room}`)
    t.strictSame(await ann.linked('ann', 3), [accepted, joined('ann'), linked('ann')])
    const bob = await connect(b, `/tables/${room}`)
    t.strictSame(await bob.linked('bob', 5), [accepted, joined('ann'), linked('ann'), joined('bob'), linked('bob')])
    t.strictSame(await ann.take(2), [joined('bob'), linked('bob')])
    b.linkServer.room(room).broadcast({ type: 'deal', payload: room }, 'bob')
    t.strictSame(await ann.take(1), [{ type: 'deal', payload: room }])
    seen.push(ann, bob)
  }
  t.strictSame(seen.map(client => replay(client.frames())), seen.map(() => [{ username: 'ann', isLinked: true }, { username: 'bob', isLinked: true }]))
  const holders = await Promise.all(rooms.map(async room => {
    const slot = await admins[0].call('CLUSTER', 'KEYSLOT', `{tables:${room}}`) as number
    // What each master holds of the slot itself (a key of another master's slot would answer MOVED).
    return await Promise.all(admins.map(async admin => (await admin.call('CLUSTER', 'GETKEYSINSLOT', slot, 100) as string[]).includes(`{tables:${room}}:users`) ? 1 : 0))
  }))
  t.strictSame(holders, shards.map(shard => [0, 1, 2].map(i => i === shard ? 1 : 0)), 'each room\'s users are on the master of its own tag only')
  t.strictSame(await a.linkServer.getRooms(), [...rooms].sort())
  await a.linkServer.room(rooms[0]).kick('bob')
  t.strictSame(await seen[1].take(2), [frames.unlinked('bob'), frames.left('bob')])
})
