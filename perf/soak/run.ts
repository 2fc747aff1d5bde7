// npm run soak:load [-- --connections 5000 --rate 1 --duration 60 --drops 300 --cuts 300]
//
// Starts the example chat server (perf/soak/server.ts) and the load generator (perf/soak/load.ts), each in a
// process of its own, on loopback, and prints one JSON line: connections held, messages sent and
// received on both sides, broadcast frames written and received, latency, memory and errors.
import { fork, spawn } from 'node:child_process'
import { once } from 'node:events'
import { cpus, totalmem } from 'node:os'
import { fileURLToPath } from 'node:url'

const here = (file: string): string => fileURLToPath(new URL(file, import.meta.url))
const server = spawn(process.execPath, ['--expose-gc', '--import', 'tsx', here('server.ts')], { stdio: ['ignore', 'pipe', 'inherit'] })
const [line] = await once(server.stdout, 'data') as [Buffer]
const { port } = JSON.parse(line.toString()) as { port: number }
const base = `http://127.0.0.1:${port}`
const get = async (path: string, method = 'GET'): Promise<any> => await (await fetch(base + path, { method })).json()

const load = fork(here('load.ts'), ['--port', String(port), ...process.argv.slice(2)], { execArgv: ['--import', 'tsx'] })
let linked: any
let stopped: any
const result = await new Promise<any>((resolve, reject) => {
  load.once('exit', code => reject(new Error(`the load generator exited with ${String(code)}`)))
  load.on('message', (message: any) => {
    if (message.phase === 'linked') {
      get('/soak/stats').then(stats => { linked = stats }, reject)
    } else if (message.phase === 'ran') {
      get('/soak/stop', 'POST').then(counters => {
        stopped = counters
        load.send(counters)
      }, reject)
    } else if (message.phase === 'done') {
      resolve(message.result)
    }
  })
})
const end = await get('/soak/stats')
load.send('exit')
await once(load, 'exit')
server.kill('SIGTERM')
const mib = (bytes: number): number => Number((bytes / 1024 / 1024).toFixed(1))
console.log(JSON.stringify({
  machine: { cpus: cpus().length, memoryGiB: Math.round(totalmem() / 1024 ** 3), node: process.version },
  options: process.argv.slice(2).join(' ') || 'defaults',
  connectionsHeld: { clients: result.connectionsHeld, server: end.stats.linkedUsers },
  messages: {
    sentByClients: result.pingsSent,
    receivedByServer: stopped.pingsReceived,
    answersReceivedByClients: result.pongsDistinct,
    answersReceivedTwice: result.pongsReceived - result.pongsDistinct
  },
  broadcasts: { count: stopped.broadcasts, framesWrittenByServer: stopped.broadcastDeliveries, framesReceivedByClients: result.broadcastsReceived },
  // Replayed broadcasts arrive on top of those written live; a tick is missing only when a bound dropped it (and the link said so).
  nothingLost: result.pingsSent === stopped.pingsReceived && result.pongsDistinct === result.pingsSent && result.ticks.missing <= result.ticks.replayLost,
  drops: { dropped: result.drops, cut: result.cuts, relinked: result.relinks },
  // With replay on (the example's sessions), every tick addressed to a user: delivered once, twice, or missing.
  ticks: result.ticks,
  latencyMilliseconds: result.latencyMilliseconds,
  linkSeconds: result.linkSeconds,
  serverMemoryMiB: {
    idle: { rss: mib(end.memory.idle.rss), heapUsed: mib(end.memory.idle.heapUsed) },
    linked: { rss: mib(linked.memory.now.rss), heapUsed: mib(linked.memory.now.heapUsed) },
    end: { rss: mib(end.memory.now.rss), heapUsed: mib(end.memory.now.heapUsed) }
  },
  errors: { count: result.errors, first: result.firstErrors, invalidMessages: end.stats.invalidMessages }
}))
