// npm run bench [-- --quick] [-- --repetitions 5 --servers plugin,krmx,bare --storm-connections 10000 ...] [-- --no-cluster]
//
// Runs the same load against this plugin (in Fastify), the Krmx reference server (@krmx/server) and a
// bare `ws` server, one after another, each server and the load generator in processes of their own
// on loopback. Prints a table of medians and ratios, and writes perf/results/side-by-side.json and
// perf/results/side-by-side.svg when the run is full, perf/results/partial.* otherwise (--out names another pair).
import { type ChildProcess, fork } from 'node:child_process'
import { once } from 'node:events'
import { mkdirSync, writeFileSync } from 'node:fs'
import { cpus, totalmem } from 'node:os'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { chart } from './chart.js'
import { defaultScenarios, defaultServers, resultsName } from './results-name.js'
import type { ServerKind } from './servers.js'
import { ask, reply } from './ipc.js'

const { values } = parseArgs({
  allowNegative: true, // --no-cluster
  options: {
    quick: { type: 'boolean', default: false },
    profile: { type: 'boolean', default: false },
    repetitions: { type: 'string', default: '3' },
    servers: { type: 'string', default: defaultServers },
    scenarios: { type: 'string', default: defaultScenarios },
    'inbound-clients': { type: 'string' },
    'inbound-messages': { type: 'string' },
    'fanout-clients': { type: 'string' },
    'fanout-broadcasts': { type: 'string' },
    'burst-clients': { type: 'string' },
    'burst-senders': { type: 'string' },
    'burst-messages': { type: 'string' },
    'burst-interval': { type: 'string' },
    'storm-connections': { type: 'string' },
    'storm-concurrency': { type: 'string' },
    'memory-connections': { type: 'string' },
    'roundtrip-clients': { type: 'string' },
    'roundtrip-rate': { type: 'string' },
    'roundtrip-seconds': { type: 'string' },
    'scenario-timeout': { type: 'string', default: '300' },
    out: { type: 'string' },
    cluster: { type: 'boolean', default: true }
  }
})
const quick = values.quick === true
const size = (flag: string | undefined, full: number, small: number): number => Number(flag ?? (quick ? small : full))
const settings = {
  inbound: { clients: size(values['inbound-clients'], 200, 50), messages: size(values['inbound-messages'], 5000, 1000) },
  fanout: { clients: size(values['fanout-clients'], 2000, 200), broadcasts: size(values['fanout-broadcasts'], 100, 50), bytes: 1024 },
  burst: { clients: size(values['burst-clients'], 2000, 200), senders: size(values['burst-senders'], 200, 50), messages: size(values['burst-messages'], 5, 5), interval: size(values['burst-interval'], 10, 10) },
  storm: { connections: size(values['storm-connections'], 5000, 1000), concurrency: size(values['storm-concurrency'], 50, 50) },
  memory: { connections: size(values['memory-connections'], 10_000, 1000) },
  roundtrip: { clients: size(values['roundtrip-clients'], 1000, 200), rate: size(values['roundtrip-rate'], 1, 1), seconds: size(values['roundtrip-seconds'], 10, 5) }
}
const repetitions = Number(values.repetitions)
const servers = (values.servers as string).split(',') as ServerKind[]
const scenarios = (values.scenarios as string).split(',')

const here = (file: string): string => fileURLToPath(new URL(file, import.meta.url))

/** A fresh server and load generator for one scenario; both are gone afterwards. */
async function withProcesses<T> (kind: ServerKind, run: (server: ChildProcess, load: ChildProcess) => Promise<T>): Promise<T> {
  // --profile writes a CPU profile of each server process to perf/bench/profiles/, for flame graphs (Chrome DevTools, speedscope).
  const profile = values.profile === true ? ['--cpu-prof', `--cpu-prof-dir=${here('profiles')}`] : []
  const server = fork(here('server-process.ts'), [kind], { execArgv: ['--expose-gc', ...profile, '--import', 'tsx'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
  const { port } = await reply<{ port: number }>(server)
  const load = fork(here('load-process.ts'), [String(port)], { execArgv: ['--import', 'tsx'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
  await reply(load)
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new TimeoutError()), Number(values['scenario-timeout']) * 1000)
  })
  try {
    return await Promise.race([run(server, load), timeout])
  } finally {
    clearTimeout(timer)
    load.kill()
    const exited = Promise.all([once(load, 'exit'), once(server, 'exit')])
    server.send({ cmd: 'close' }) // a clean exit, so that a CPU profile is written
    const killer = setTimeout(() => server.kill('SIGKILL'), 5000) // unless it is too busy to hear it
    await exited
    clearTimeout(killer)
  }
}

/** A scenario that did not finish within --scenario-timeout seconds. */
class TimeoutError extends Error {}

interface MemoryReading { heapUsed: number, rss: number, youngGeneration: number }
interface LinkResult { seconds: number, p50: number, p99: number }
type Metrics = Record<string, number>

async function inbound (kind: ServerKind): Promise<Metrics> {
  return await withProcesses(kind, async (server, load) => {
    const { clients, messages } = settings.inbound
    await ask(load, { cmd: 'link', count: clients, concurrency: 50 })
    const total = clients * messages
    await ask(server, { cmd: 'inbound', total })
    const done = reply<{ seconds: number }>(server)
    await ask(load, { cmd: 'inbound', perClient: messages })
    const { seconds } = await done
    return { [kind === 'plugin-typed' ? 'messagesPerSecondWithSchemas' : 'messagesPerSecond']: total / seconds }
  })
}

/** 2,000 linked clients, and the server broadcasts 100 messages of 1 KB, one per turn; `session`: the clients ask for the session extension. */
async function fanout (kind: ServerKind, session: boolean): Promise<Metrics> {
  return await withProcesses(kind, async (server, load) => {
    const { clients, broadcasts, bytes } = settings.fanout
    await ask(load, { cmd: 'link', count: clients, concurrency: 50, session })
    const total = clients * broadcasts
    await ask(load, { cmd: 'expect', prefix: 'fan', total })
    const received = reply<{ frames: number, seconds: number }>(load)
    await ask(server, { cmd: 'fanout', count: broadcasts, size: bytes })
    const { seconds } = await received
    // Per broadcast, from the first frame at a client to the last frame at all clients.
    return { framesPerSecond: total / seconds, msPerBroadcast: seconds * 1000 / broadcasts }
  })
}

const runs: Record<string, (kind: ServerKind) => Promise<Metrics>> = {
  inbound,
  // The inbound scenario again, with a TypeBox schema registered for the message type: what validation costs.
  validation: async kind => kind === 'plugin' ? await inbound('plugin-typed') : {},
  fanout: async kind => await fanout(kind, false),
  // Broadcasts as a chat room makes them: `senders` of the clients each say lines at their own pace, and the
  // server broadcasts every line from its message handler, so that many broadcasts fall in one turn.
  burst: async kind => await withProcesses(kind, async (_server, load) => {
    const { clients, senders, messages, interval } = settings.burst
    await ask(load, { cmd: 'link', count: clients, concurrency: 50 })
    const total = clients * senders * messages
    await ask(load, { cmd: 'expect', prefix: 'burst/said', total })
    await ask(load, { cmd: 'burst', senders, messages, interval }) // answered at once, before the lines arrive
    const { seconds } = await reply<{ frames: number, seconds: number }>(load)
    return { burstFramesPerSecond: total / seconds }
  }),
  // The fan-out scenario again with replay on: every message numbered and kept for each recipient until its pong confirms it.
  replay: async (kind): Promise<Metrics> => kind === 'plugin' ? { framesPerSecondWithReplay: (await runs.fanout('plugin-replay')).framesPerSecond } : {},
  // The replay scenario again, the clients asking for the session extension: each message numbered in its own frame per recipient.
  'replay-session': async (kind): Promise<Metrics> => kind === 'plugin' ? { framesPerSecondWithReplaySessions: (await fanout('plugin-replay', true)).framesPerSecond } : {},
  // Inbound and fan-out again with Prometheus metrics on (and scraped every second): what counting costs on the hot path.
  metrics: async (kind): Promise<Metrics> => kind === 'plugin'
    ? {
        messagesPerSecondWithMetrics: (await runs.inbound('plugin-metrics')).messagesPerSecond,
        framesPerSecondWithMetrics: (await runs.fanout('plugin-metrics')).framesPerSecond
      }
    : {},
  storm: async kind => await withProcesses(kind, async (_server, load) => {
    const { connections, concurrency } = settings.storm
    const linked = await ask<LinkResult>(load, { cmd: 'link', count: connections, concurrency })
    return { linksPerSecond: connections / linked.seconds, p99Milliseconds: linked.p99 }
  }),
  memory: async kind => await withProcesses(kind, async (server, load) => {
    const { connections } = settings.memory
    const idle = await ask<MemoryReading>(server, { cmd: 'memory' })
    await ask(load, { cmd: 'link', count: connections, concurrency: 100 })
    const linked = await ask<MemoryReading>(server, { cmd: 'memory' })
    const perConnection = (bytes: (reading: MemoryReading) => number): number => (bytes(linked) - bytes(idle)) / connections
    return {
      heapBytesPerConnection: perConnection(reading => reading.heapUsed),
      rssBytesPerConnection: perConnection(reading => reading.rss),
      // RSS less V8's young generation, whose size follows the recent rate of allocation (the storm's), not what is kept.
      rssOldBytesPerConnection: perConnection(reading => reading.rss - reading.youngGeneration)
    }
  }),
  roundtrip: async kind => await withProcesses(kind, async (_server, load) => {
    const { clients, rate, seconds } = settings.roundtrip
    await ask(load, { cmd: 'link', count: clients, concurrency: 50 })
    const result = await ask<{ p50: number, p99: number }>(load, { cmd: 'roundtrip', rate, seconds })
    return { p50Milliseconds: result.p50, p99Milliseconds: result.p99 }
  })
}

/** Which way is better, for each metric. */
const better: Record<string, 'higher' | 'lower'> = {
  messagesPerSecond: 'higher',
  messagesPerSecondWithSchemas: 'higher',
  messagesPerSecondWithMetrics: 'higher',
  framesPerSecondWithMetrics: 'higher',
  framesPerSecondWithReplay: 'higher',
  framesPerSecondWithReplaySessions: 'higher',
  framesPerSecond: 'higher',
  burstFramesPerSecond: 'higher',
  msPerBroadcast: 'lower',
  linksPerSecond: 'higher',
  p99Milliseconds: 'lower',
  heapBytesPerConnection: 'lower',
  rssBytesPerConnection: 'lower',
  rssOldBytesPerConnection: 'lower',
  p50Milliseconds: 'lower'
}

const median = (samples: number[]): number => [...samples].sort((a, b) => a - b)[Math.floor(samples.length / 2)]
const samples: Record<string, Record<string, Record<string, number[]>>> = {}
const timeouts: Array<{ repetition: number, scenario: string, server: ServerKind }> = []
const started = Date.now()
for (let repetition = 0; repetition < repetitions; repetition++) {
  for (const scenario of scenarios) {
    for (const kind of servers) {
      let metrics: Metrics
      try {
        metrics = await runs[scenario](kind)
        if (Object.keys(metrics).length === 0) continue
      } catch (err) {
        if (!(err instanceof TimeoutError)) throw err
        timeouts.push({ repetition: repetition + 1, scenario, server: kind })
        console.error(`repetition ${repetition + 1}/${repetitions} ${scenario} ${kind}: did not finish in ${String(values['scenario-timeout'])} s`)
        continue
      }
      for (const [metric, value] of Object.entries(metrics)) {
        ((samples[scenario] ??= {})[metric] ??= {})[kind] ??= []
        samples[scenario][metric][kind].push(value)
      }
      console.error(`repetition ${repetition + 1}/${repetitions} ${scenario} ${kind}: ${JSON.stringify(metrics)}`)
    }
  }
}

const rows: Array<{ scenario: string, metric: string, better: string, medians: Record<string, number>, vsReference?: number, vsBare?: number, vsCoalesced?: number }> = []
for (const [scenario, metrics] of Object.entries(samples)) {
  for (const [metric, byServer] of Object.entries(metrics)) {
    const medians = Object.fromEntries(Object.entries(byServer).map(([kind, values]) => [kind, median(values)]))
    // A ratio above 1 means this plugin does better, whichever way the metric goes.
    const ratio = (other: number | undefined): number | undefined => other === undefined || medians.plugin === undefined
      ? undefined
      : better[metric] === 'higher' ? medians.plugin / other : other / medians.plugin
    rows.push({ scenario, metric, better: better[metric], medians, vsReference: ratio(medians.krmx), vsBare: ratio(medians.bare), vsCoalesced: ratio(medians['bare-coalesced']) })
  }
}

const format = (value: number | undefined): string => value === undefined ? '' : value >= 100 ? Math.round(value).toLocaleString('en') : value.toFixed(2)
console.log(`| scenario | metric | ${servers.join(' | ')} | plugin vs reference | plugin vs bare ws | plugin vs bare ws coalesced |`)
console.log(`|---|---|${servers.map(() => '---:').join('|')}|---:|---:|---:|`)
for (const row of rows) {
  const times = (ratio: number | undefined): string => ratio === undefined ? '' : `${format(ratio)}×`
  console.log(`| ${row.scenario} | ${row.metric} (${row.better} is better) | ${servers.map(kind => format(row.medians[kind])).join(' | ')} | ${times(row.vsReference)} | ${times(row.vsBare)} | ${times(row.vsCoalesced)} |`)
}

const machine = { cpus: cpus().length, cpu: cpus()[0]?.model, memoryGiB: Math.round(totalmem() / 1024 ** 3), node: process.version, platform: process.platform }
const results = { date: new Date().toISOString(), minutes: Number(((Date.now() - started) / 60_000).toFixed(1)), machine, repetitions, settings, rows, samples, timeouts }
mkdirSync(here('../results'), { recursive: true })
// Only a full run replaces the published results; a quick, partial or profiled one writes beside them.
const out = resultsName(values)
writeFileSync(here(`../results/${out}.json`), JSON.stringify(results, null, 2) + '\n')
writeFileSync(here(`../results/${out}.svg`), chart(rows.filter(row => row.vsReference !== undefined || row.vsBare !== undefined || row.vsCoalesced !== undefined), machine, repetitions))
for (const { repetition, scenario, server } of timeouts) {
  console.log(`repetition ${repetition}: ${scenario} on ${server} did not finish in ${String(values['scenario-timeout'])} s`)
}
const typed = rows.find(row => row.scenario === 'validation')?.medians.plugin
const untyped = rows.find(row => row.scenario === 'inbound')?.medians.plugin
if (typed !== undefined && untyped !== undefined) {
  console.log(`\nvalidation: inbound with a TypeBox schema for the message type runs at ${(typed / untyped).toFixed(2)}× the rate without`)
}
for (const [metric, scenario] of [['messagesPerSecondWithMetrics', 'inbound'], ['framesPerSecondWithMetrics', 'fanout']]) {
  const on = rows.find(row => row.metric === metric)?.medians.plugin
  const off = rows.find(row => row.scenario === scenario && row.metric === (scenario === 'inbound' ? 'messagesPerSecond' : 'framesPerSecond'))?.medians.plugin
  if (on !== undefined && off !== undefined) {
    console.log(`metrics: ${scenario} with Prometheus metrics on runs at ${(on / off).toFixed(2)}× the rate without`)
  }
}
console.log(`\nwritten: perf/results/${out}.json, perf/results/${out}.svg (${results.minutes} min)`)

// Cluster mode (Redis + 2 instances), beside the single instance of its own run: perf/bench/cluster.ts.
if (values.cluster !== false) {
  console.log('')
  const cluster = fork(here('cluster.ts'), [...(quick ? ['--quick'] : []), '--repetitions', String(repetitions)], { execArgv: ['--import', 'tsx'], stdio: 'inherit' })
  const [code] = await once(cluster, 'exit') as [number]
  process.exitCode = code
}
