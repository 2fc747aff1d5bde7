// npm run bench:cluster [-- --quick] [-- --repetitions 3]   (npm run bench runs it after the single-instance table)
//
// Cluster mode on this machine: a redis-server of its own (free loopback port, persistence off) and two
// instances of the plugin, each with its load generator, in processes of their own; beside each figure,
// the single instance of the same run, at the sizes of `npm run bench`. Prints medians and ratios, the
// PUBLISH commands per broadcast (one for the whole cluster, not one per recipient), the heap per linked
// connection and Redis' memory per linked user.
import { type ChildProcess, fork } from 'node:child_process'
import { once } from 'node:events'
import { performance } from 'node:perf_hooks'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { ask, reply } from './ipc.js'
import { startRedis } from './redis-server.js'

const { values } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    repetitions: { type: 'string', default: '3' },
    scenarios: { type: 'string', default: 'fanout,replay,burst,storm,memory,inbound' }
  }
})
const quick = values.quick === true
const settings = {
  fanout: { clients: quick ? 200 : 2000, broadcasts: quick ? 50 : 100, bytes: 1024 },
  burst: { clients: quick ? 200 : 2000, senders: quick ? 50 : 200, messages: 5, interval: 10 },
  storm: { connections: quick ? 1000 : 5000, concurrency: 50 },
  memory: { connections: quick ? 1000 : 10_000 },
  inbound: { clients: quick ? 50 : 200, messages: quick ? 1000 : 5000 }
}
const repetitions = Number(values.repetitions)
const here = (file: string): string => fileURLToPath(new URL(file, import.meta.url))

interface Instance { server: ChildProcess, load: ChildProcess }

/** `nodes` instances (one without Redis, or nodes of a cluster on `redis`), each with a load generator of its own. */
async function start (nodes: number, redis: string | undefined, replay: boolean): Promise<Instance[]> {
  const kind = `${redis === undefined ? 'plugin' : 'plugin-cluster'}${replay ? '-replay' : ''}`
  return await Promise.all(Array.from({ length: nodes }, async (_, index) => {
    const env = { ...process.env, REDIS_URL: redis, NODE_ID: `n${index}` }
    const server = fork(here('server-process.ts'), [kind], { env, execArgv: ['--expose-gc', '--import', 'tsx'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
    const { port } = await reply<{ port: number }>(server)
    const load = fork(here('load-process.ts'), [String(port), `n${index}u`], { execArgv: ['--import', 'tsx'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
    await reply(load)
    return { server, load }
  }))
}

async function stop (instances: Instance[]): Promise<void> {
  await Promise.all(instances.flatMap(({ server, load }) => [server, load].map(async child => {
    const exited = once(child, 'exit')
    child.send({ cmd: 'close' })
    await exited
  })))
}

/** Splits `total` over `parts` as evenly as whole numbers allow. */
const share = (total: number, parts: number, index: number): number => Math.floor(total / parts) + (index < total % parts ? 1 : 0)

async function fanout (instances: Instance[]): Promise<number> {
  const { clients, broadcasts, bytes } = settings.fanout
  await Promise.all(instances.map(({ load }, index) => ask(load, { cmd: 'link', count: share(clients, instances.length, index), concurrency: 50 })))
  const arrivals: Array<Promise<unknown>> = []
  for (const [index, { load }] of instances.entries()) {
    await ask(load, { cmd: 'expect', prefix: 'fan', total: share(clients, instances.length, index) * broadcasts })
    arrivals.push(reply(load))
  }
  const started = performance.now()
  await ask(instances[0].server, { cmd: 'fanout', count: broadcasts, size: bytes })
  await Promise.all(arrivals)
  return clients * broadcasts / ((performance.now() - started) / 1000)
}

/** The first senders of every instance say lines that every client hears, through the other instance too. */
async function burst (instances: Instance[]): Promise<number> {
  const { clients, senders, messages, interval } = settings.burst
  await Promise.all(instances.map(({ load }, index) => ask(load, { cmd: 'link', count: share(clients, instances.length, index), concurrency: 50 })))
  const arrivals: Array<Promise<{ seconds: number }>> = []
  for (const [index, { load }] of instances.entries()) {
    await ask(load, { cmd: 'expect', prefix: 'burst/said', total: share(clients, instances.length, index) * senders * messages })
  }
  const started = performance.now()
  for (const [index, { load }] of instances.entries()) {
    await ask(load, { cmd: 'burst', senders: share(senders, instances.length, index), messages, interval }) // answered at once
    arrivals.push(reply(load))
  }
  await Promise.all(arrivals)
  return clients * senders * messages / ((performance.now() - started) / 1000)
}

/** Heap and RSS bytes per idle linked connection, over all instances (each also mirrors every user). */
async function memory (instances: Instance[]): Promise<number> {
  const { connections } = settings.memory
  const usage = async (): Promise<{ heapUsed: number, rss: number }> => {
    const all = await Promise.all(instances.map(async ({ server }) => await ask<{ heapUsed: number, rss: number }>(server, { cmd: 'memory' })))
    return { heapUsed: all.reduce((sum, { heapUsed }) => sum + heapUsed, 0), rss: all.reduce((sum, { rss }) => sum + rss, 0) }
  }
  const idle = await usage()
  await Promise.all(instances.map(({ load }, index) => ask(load, { cmd: 'link', count: share(connections, instances.length, index), concurrency: 100 })))
  const linked = await usage()
  rssPerConnection[instances.length === 1 ? 'single' : 'cluster'].push((linked.rss - idle.rss) / connections)
  return (linked.heapUsed - idle.heapUsed) / connections
}

async function storm (instances: Instance[]): Promise<number> {
  const { connections, concurrency } = settings.storm
  const started = performance.now()
  await Promise.all(instances.map(({ load }, index) => ask(load, { cmd: 'link', count: share(connections, instances.length, index), concurrency })))
  return connections / ((performance.now() - started) / 1000)
}

/** The clients all link to, and send to, the first instance; in a cluster the second only mirrors the user space. */
async function inbound (instances: Instance[]): Promise<number> {
  const { clients, messages } = settings.inbound
  const [{ server, load }] = instances
  await ask(load, { cmd: 'link', count: clients, concurrency: 50 })
  const total = clients * messages
  await ask(server, { cmd: 'inbound', total })
  const result = reply<{ messages: number, seconds: number }>(server)
  await ask(load, { cmd: 'inbound', perClient: messages })
  const { seconds } = await result
  return total / seconds
}

const median = (numbers: number[]): number => [...numbers].sort((a, b) => a - b)[Math.floor(numbers.length / 2)]

const { url: redisUrl, admin, stop: stopRedis } = await startRedis()

const figures: Record<string, { single: number[], cluster: number[] }> = {
  fanout: { single: [], cluster: [] },
  replay: { single: [], cluster: [] },
  burst: { single: [], cluster: [] },
  storm: { single: [], cluster: [] },
  memory: { single: [], cluster: [] },
  inbound: { single: [], cluster: [] }
}
const rssPerConnection = { single: [] as number[], cluster: [] as number[] }
const publishesPerBroadcast: number[] = []
const bytesPerUser: number[] = []
// replay: the fan-out with missed-message replay on, where every message goes through Redis in the cluster.
const all: Record<string, (instances: Instance[]) => Promise<number>> = { fanout, replay: fanout, burst, storm, memory, inbound }
const scenarios = Object.fromEntries((values.scenarios as string).split(',').map(name => [name, all[name]]))

async function publishes (): Promise<number> {
  const stats = await admin.info('commandstats')
  return Number(/cmdstat_publish:calls=(\d+)/.exec(stats)?.[1] ?? 0)
}

try {
  for (let repetition = 0; repetition < repetitions; repetition++) {
    for (const [name, run] of Object.entries(scenarios)) {
      const single = await start(1, undefined, name === 'replay')
      figures[name].single.push(await run(single))
      await stop(single)
      await admin.flushall()
      const cluster = await start(2, redisUrl, name === 'replay')
      const memoryBefore = Number(/used_memory:(\d+)/.exec(await admin.info('memory'))?.[1])
      const publishedBefore = await publishes()
      figures[name].cluster.push(await run(cluster))
      if (name === 'fanout') {
        // Every record of the log is published too (one per link here): what is left is the broadcasts'.
        const records = Number(await admin.get('{bench}:seq') ?? 0)
        publishesPerBroadcast.push((await publishes() - publishedBefore - records) / settings.fanout.broadcasts)
      }
      if (name === 'memory') {
        const memoryAfter = Number(/used_memory:(\d+)/.exec(await admin.info('memory'))?.[1])
        bytesPerUser.push((memoryAfter - memoryBefore) / settings.memory.connections)
      }
      await stop(cluster)
      await admin.flushall()
    }
  }
} finally {
  admin.disconnect()
  stopRedis()
}

const rows = [
  ['fan-out frames/s (clients over 2 nodes)', figures.fanout, 'higher'],
  ['fan-out with replay on, frames/s', figures.replay, 'higher'],
  [`burst frames/s (${settings.burst.senders} senders of ${settings.burst.clients} clients over 2 nodes)`, figures.burst, 'higher'],
  [`link storm links/s (${settings.storm.connections} over 2 nodes)`, figures.storm, 'higher'],
  [`heap bytes per idle linked connection (${settings.memory.connections} over 2 nodes, both nodes' heaps)`, figures.memory, 'lower'],
  ['RSS bytes per idle linked connection (both nodes)', rssPerConnection, 'lower'],
  ['inbound messages/s (on one node)', figures.inbound, 'higher']
] as const
const round = (value: number): string => Math.round(value).toLocaleString('en-US')
console.log(`cluster mode: Redis + 2 instances, medians of ${repetitions}${quick ? ' (quick)' : ''}`)
console.log('| scenario | single instance | cluster of 2 | cluster vs single (above 1 is better) |')
console.log('|---|---:|---:|---:|')
for (const [label, { single, cluster }, way] of rows) {
  if (single.length === 0) continue
  const ratio = way === 'higher' ? median(cluster) / median(single) : median(single) / median(cluster)
  console.log(`| ${label} | ${round(median(single))} | ${round(median(cluster))} | ${ratio.toFixed(2)}× |`)
}
if (publishesPerBroadcast.length > 0) {
  console.log(`PUBLISH commands per broadcast: ${median(publishesPerBroadcast)} (for ${settings.fanout.clients} recipients on 2 nodes)`)
}
if (bytesPerUser.length > 0) {
  console.log(`Redis memory per linked user: ${round(median(bytesPerUser))} bytes (keys, log entries and claims of ${settings.memory.connections} links)`)
}
