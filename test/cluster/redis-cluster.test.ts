import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Cluster, Redis } from 'ioredis'
import t from 'tap'
import { build } from '../helpers/app.js'
import { connect } from '../helpers/clients.js'
import { frames } from '../helpers/frames.js'
import { eventually } from '../helpers/waits.js'
import { RedisServer } from '../helpers/redis-server.js'

// Redis Cluster: one redis-server in cluster mode holding every slot, reached through an ioredis
// Cluster client. Every key of a namespace shares the hash tag {namespace}, so every script runs on
// one slot, and pub/sub reaches every node of a Redis Cluster.
t.test('two instances share one user space through an ioredis Cluster client on a Redis Cluster', async t => {
  const directory = mkdtempSync(join(tmpdir(), 'redis-cluster-'))
  t.teardown(() => rmSync(directory, { recursive: true, force: true }))
  const redis = await RedisServer.start(t, ['--cluster-enabled', 'yes', '--cluster-announce-ip', '127.0.0.1', '--cluster-config-file', join(directory, 'nodes.conf')])
  const admin = new Redis(redis.url)
  t.teardown(() => admin.disconnect())
  await admin.call('CLUSTER', 'ADDSLOTSRANGE', '0', '16383')
  let state = ''
  while (!state.includes('cluster_state:ok')) {
    state = await admin.call('CLUSTER', 'INFO') as string
  }
  const client = new Cluster([{ host: '127.0.0.1', port: redis.port }])
  t.teardown(() => client.disconnect())
  await new Promise(resolve => client.once('ready', resolve))
  const cluster = { redis: client, namespace: 'on-cluster', nodeTimeoutMilliseconds: 2_000 }
  const a = await build(t, { listen: true, cluster: { ...cluster, nodeId: 'a' } })
  const b = await build(t, { listen: true, cluster: { ...cluster, nodeId: 'b' } })
  const alice = await connect(a)
  t.strictSame(await alice.linked('alice', 3), [frames.accepted, frames.joined('alice'), frames.linked('alice')])
  const bob = await connect(b)
  t.strictSame(await bob.linked('bob', 5), [frames.accepted, frames.joined('alice'), frames.linked('alice'), frames.joined('bob'), frames.linked('bob')])
  t.strictSame(await alice.take(2), [frames.joined('bob'), frames.linked('bob')])
  b.linkServer.broadcast({ type: 'hello' }, 'bob')
  t.strictSame(await alice.take(1), [{ type: 'hello' }])
  await a.linkServer.kick('bob')
  t.strictSame(await bob.take(2), [frames.unlinked('bob'), frames.left('bob')])
  await eventually(() => b.linkServer.getUsers().length === 1, () => JSON.stringify(b.linkServer.getUsers()))
  t.strictSame(b.linkServer.getUsers(), [{ username: 'alice', isLinked: true }])
  t.strictSame(await client.zrange('{on-cluster}:users', 0, -1), ['alice'])

  const prefixed = new Cluster([{ host: '127.0.0.1', port: redis.port }], { redisOptions: { keyPrefix: 'app:' } })
  t.teardown(() => prefixed.disconnect())
  await new Promise(resolve => prefixed.once('ready', resolve))
  const c = await build(t, { listen: true, cluster: { redis: prefixed, namespace: 'on-cluster', nodeId: 'c', nodeTimeoutMilliseconds: 2_000 } })
  const carol = await connect(c)
  t.strictSame(await carol.linked('carol', 3), [frames.accepted, frames.joined('carol'), frames.linked('carol')],
    "a Cluster client's keyPrefix makes a user space of its own")
  t.strictSame([await admin.zrange('app:{on-cluster}:users', 0, -1), await admin.zrange('{on-cluster}:users', 0, -1)], [['carol'], ['alice']])
})
