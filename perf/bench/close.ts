// npm run bench:close [-- --users 10000 --linked 2000 --order first|last --repetitions 3]
//
// How long fastify.close() takes and how much heap it grows with many users, many of them linked over
// real loopback sockets (the clients run in a process of their own, so the heap measured is the server's).
// Prints, per run and as medians: the time to close, the longest the event loop was blocked, the heap
// before and its peak during the close, and the frames the clients received during it. With
// `--order last` the linked users joined after all the others, so that every other user's leave
// happens while all of them are still linked: the costliest order for a close that tells every
// connection of every leave (and a longer set-up, since each link is sent every user before it).
import { monitorEventLoopDelay, performance } from 'node:perf_hooks'
import { getHeapStatistics, setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import { parseArgs } from 'node:util'
import { type ChildProcess, fork } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import Fastify from 'fastify'
import fastifyLinkServer from '../../index.js'

const { values } = parseArgs({
  options: {
    users: { type: 'string', default: '10000' },
    linked: { type: 'string', default: '2000' },
    order: { type: 'string', default: 'first' },
    repetitions: { type: 'string', default: '3' }
  }
})
const users = Number(values.users)
const linked = Number(values.linked)
const repetitions = Number(values.repetitions)
const linkedLast = values.order === 'last'

setFlagsFromString('--expose-gc')
const gc = runInNewContext('gc') as () => void
const heap = (): number => getHeapStatistics().used_heap_size
const mib = (bytes: number): string => (bytes / 1024 / 1024).toFixed(1)

interface Sample { closeMilliseconds: number, longestBlockMilliseconds: number, heapBefore: number, heapPeak: number, goodbyeFrames: number, goodbyeBytes: number, closedWith1001: number }

function nextMessage<T> (worker: ChildProcess, kind: string): Promise<T> {
  return new Promise((resolve, reject) => {
    const onMessage = (message: T & { kind: string }): void => {
      if (message.kind === kind) {
        worker.off('message', onMessage)
        resolve(message)
      }
    }
    worker.on('message', onMessage)
    worker.once('error', reject)
  })
}

async function once (): Promise<Sample> {
  const app = Fastify()
  await app.register(fastifyLinkServer, { rateLimit: false, maxUsers: Math.max(users, 10_000), maxConnections: Math.max(linked + 10, 10_000) })
  await app.listen({ port: 0, host: '127.0.0.1' })
  const { port } = app.server.address() as { port: number }
  const joinOthers = async (): Promise<void> => {
    for (let index = linked; index < users; index++) {
      app.linkServer.join(`user${index}`)
      if (index % 100 === 0) {
        await new Promise(resolve => setImmediate(resolve))
      }
    }
  }
  if (linkedLast) {
    await joinOthers()
  }
  const worker = fork(fileURLToPath(new URL('./close-clients.ts', import.meta.url)), [String(port), String(linked), String(linkedLast ? users - linked : 0)])
  await nextMessage(worker, 'linked')
  if (!linkedLast) {
    await joinOthers()
  }
  // krmx/accepted, two frames for each linked user (in its list or when it linked later), one for each other user.
  worker.send({ kind: 'count', expected: 1 + 2 * linked + (users - linked) })
  await nextMessage(worker, 'counted')
  worker.send({ kind: 'closing' })
  await nextMessage(worker, 'ready')

  gc()
  const heapBefore = heap()
  let heapPeak = heapBefore
  let left = 0
  // The peak is at the end of the synchronous leave loop, before any frame is flushed: sampled there.
  app.linkServer.on('leave', () => {
    if (++left === users) {
      heapPeak = Math.max(heapPeak, heap())
    }
  })
  const sampler = setInterval(() => { heapPeak = Math.max(heapPeak, heap()) }, 1)
  const delay = monitorEventLoopDelay({ resolution: 1 })
  delay.enable()
  const closed = nextMessage<{ goodbyeFrames: number, goodbyeBytes: number, closedWith1001: number }>(worker, 'closed')
  const started = performance.now()
  await app.close()
  const closeMilliseconds = performance.now() - started
  delay.disable()
  clearInterval(sampler)
  const { goodbyeFrames, goodbyeBytes, closedWith1001 } = await closed
  worker.send({ kind: 'end' })
  await new Promise(resolve => worker.once('exit', resolve))
  return { closeMilliseconds, longestBlockMilliseconds: delay.max / 1e6, heapBefore, heapPeak, goodbyeFrames, goodbyeBytes, closedWith1001 }
}

const median = (numbers: number[]): number => [...numbers].sort((a, b) => a - b)[Math.floor(numbers.length / 2)]

console.log(`fastify.close() with ${users} users, ${linked} linked over loopback (joined ${linkedLast ? 'last' : 'first'}); ${repetitions} runs`)
const samples: Sample[] = []
for (let run = 0; run < repetitions; run++) {
  const sample = await once()
  samples.push(sample)
  console.log(`run ${run + 1}: close ${sample.closeMilliseconds.toFixed(0)} ms, longest block ${sample.longestBlockMilliseconds.toFixed(0)} ms, ` +
    `heap ${mib(sample.heapBefore)} MiB before, +${mib(sample.heapPeak - sample.heapBefore)} MiB at the peak, ` +
    `${sample.goodbyeFrames} goodbye frames (${sample.goodbyeBytes} bytes), ${sample.closedWith1001}/${linked} closed with 1001`)
}
console.log('\n| users | linked | close (ms) | longest event-loop block (ms) | heap before (MiB) | heap growth at peak (MiB) | goodbye frames | closed with 1001 |')
console.log('|---|---|---|---|---|---|---|---|')
console.log(`| ${users} | ${linked} | ${median(samples.map(s => s.closeMilliseconds)).toFixed(0)} | ${median(samples.map(s => s.longestBlockMilliseconds)).toFixed(0)} | ` +
  `${mib(median(samples.map(s => s.heapBefore)))} | ${mib(median(samples.map(s => s.heapPeak - s.heapBefore)))} | ` +
  `${median(samples.map(s => s.goodbyeFrames))} | ${median(samples.map(s => s.closedWith1001))} |`)
