import { once } from 'node:events'
import t from 'tap'
import { agree, linkTo, node, spawnNodeProcess } from '../helpers/cluster.js'
import { build } from '../helpers/app.js'
import { frames } from '../helpers/frames.js'
import { counted, scrape } from '../helpers/metrics.js'
import { eventually } from '../helpers/waits.js'
import { RedisServer } from '../helpers/redis-server.js'

// Operating a cluster on a real redis-server: the metrics of its nodes and Redis, and readiness while Redis is away.

const redis = await RedisServer.start(t)

/** The nodes alive as `app` last saw them, what its gauge reads when scraped. */
function nodesSeen (app: Awaited<ReturnType<typeof build>>): number | undefined {
  return (app.linkServer as unknown as { metricsSource: { nodes: () => number | undefined } }).metricsSource.nodes()
}

t.test('cluster metrics: the nodes alive, the Redis round trips by script, a node death counted once by the node that swept it', async t => {
  const namespace = 'metrics'
  const a = await node(t, redis, 'a', { metrics: true }, namespace)
  const b = await node(t, redis, 'b', { metrics: true }, namespace)
  const doomed = await spawnNodeProcess(t, redis, 'doomed', namespace)
  const { client: alice } = await linkTo((a.server.address() as { port: number }).port, 'alice', 3)
  await linkTo(doomed.port, 'dan', 5)
  await alice.take(2)
  await eventually(() => nodesSeen(a) === 3, () => `node a saw ${nodesSeen(a)} nodes`)
  t.equal((await scrape(a)).link_server_cluster_nodes, 3)
  const exited = once(doomed.child, 'exit')
  doomed.child.kill('SIGKILL')
  await exited
  t.strictSame(await alice.take(1), [frames.unlinked('dan')])
  await agree([a, b], [alice], [{ username: 'alice', isLinked: true }, { username: 'dan', isLinked: false }])
  await eventually(() => nodesSeen(a) === 2 && nodesSeen(b) === 2, () => `the nodes saw ${nodesSeen(a)} and ${nodesSeen(b)} nodes`)
  t.strictSame([(await scrape(a)).link_server_cluster_nodes, (await scrape(b)).link_server_cluster_nodes], [2, 2])
  const deaths = (await scrape(a))['link_server_unlinks_total{cause="node_death"}'] + (await scrape(b))['link_server_unlinks_total{cause="node_death"}']
  t.equal(deaths, 1, 'the one unlink of the dead node\'s user is counted once, in the whole cluster')
  const samples = await counted(a)
  t.strictSame(Object.keys(samples).filter(name => name.startsWith('link_server_redis_duration_seconds_count')).sort(), [
    'link_server_redis_duration_seconds_count{script="claim"}',
    'link_server_redis_duration_seconds_count{script="heartbeat"}',
    'link_server_redis_duration_seconds_count{script="link"}'
  ])
  t.strictSame([samples['link_server_redis_duration_seconds_count{script="claim"}'], samples['link_server_redis_duration_seconds_count{script="link"}']], [1, 1])
  t.strictSame([samples.link_server_users, samples.link_server_linked_users, samples.link_server_links_total], [2, 1, 1])
  t.equal((await scrape(b)).link_server_links_total, 0, 'a link is counted by the node that made it')
})

t.test('health: live while the process serves; ready only while the link server takes links and Redis answers', async t => {
  const own = await RedisServer.start(t)
  const app = await build(t, { health: true, cluster: { redis: own.url, namespace: 'health', nodeTimeoutMilliseconds: 500 } })
  const get = async (path: string) => {
    const response = await app.inject(path)
    return [response.statusCode, response.json()]
  }
  t.strictSame(await get('/health/live'), [200, { status: 'live' }])
  t.strictSame(await get('/health/ready'), [200, { status: 'ready' }])
  await own.stop()
  await eventually(() => app.linkServer.getStatus() === 'listening' && (app.linkServer as unknown as { notReadyReason: () => unknown }).notReadyReason() !== undefined,
    () => 'the node never noticed that Redis is away')
  t.strictSame(await get('/health/ready'), [503, { status: 'not ready', reason: 'the cluster is unavailable: Redis does not answer' }])
  t.strictSame(await get('/health/live'), [200, { status: 'live' }])
  await own.restart()
  await eventually(() => (app.linkServer as unknown as { notReadyReason: () => unknown }).notReadyReason() === undefined, () => 'Redis never came back')
  t.strictSame(await get('/health/ready'), [200, { status: 'ready' }])
})
