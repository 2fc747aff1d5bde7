// What checking application messages against their schemas costs.
//
//   npm run bench:validation [-- --messages 200000 --runs 5]
//
// 1. The compiled check alone, on a valid payload of several shapes: nanoseconds and bytes allocated per check.
// 2. The whole path over a real loopback socket: one linked client sends a burst of messages;
//    server `message` events per second without schemas, with schemas, and with strictMessages.
import { execFileSync } from 'node:child_process'
import { once } from 'node:events'
import { constants, type PerformanceEntry, PerformanceObserver } from 'node:perf_hooks'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { type TSchema, Type } from '@sinclair/typebox'
import Fastify from 'fastify'
import WebSocket from 'ws'
import fastifyLinkServer, { type LinkServerOptions } from '../../index.js'
import { compileMessageSchemas } from '../../lib/messages/schemas.js'

const { values } = parseArgs({
  options: {
    messages: { type: 'string', default: '200000' },
    runs: { type: 'string', default: '5' },
    'checks-only': { type: 'boolean', default: false }
  }
})
const messageCount = Number(values.messages)
const runs = Number(values.runs)

const messages = {
  'chat/say': Type.Object({ text: Type.String({ minLength: 1, maxLength: 500 }) }),
  'game/move': Type.Object({ x: Type.Integer(), y: Type.Integer(), path: Type.Array(Type.Integer(), { maxItems: 16 }) })
}
const frame = { type: 'game/move', payload: { x: 3, y: 4, path: [1, 2, 3, 4, 5, 6, 7, 8] } }

function median (samples: number[]): number {
  const sorted = [...samples].sort((a, b) => a - b)
  return sorted[Math.floor(sorted.length / 2)]
}

/** Runs `check` on `payload` `iterations` times; the same function warms up and measures, so no compilation lands in the measure. */
function runChecks (check: (value: unknown) => boolean, payload: unknown, iterations: number): number {
  let valid = 0
  for (let i = 0; i < iterations; i++) {
    if (check(payload)) {
      valid++
    }
  }
  return valid
}

/** Payload shapes whose check costs differ: TypeBox compiles arrays, closed objects and records to code that allocates. */
const shapes: Array<[string, TSchema, unknown]> = [
  ['object of strings', messages['chat/say'], { text: 'hello there' }],
  ['object of integers', Type.Object({ x: Type.Integer(), y: Type.Integer() }), { x: 3, y: 4 }],
  ['no payload', Type.Undefined(), undefined],
  ['union of literals', Type.Union([Type.Literal('rock'), Type.Literal('paper'), Type.Literal('scissors')]), 'paper'],
  ['array of 8 integers', Type.Array(Type.Integer(), { maxItems: 16 }), [1, 2, 3, 4, 5, 6, 7, 8]],
  ['closed object', Type.Object({ text: Type.String() }, { additionalProperties: false }), { text: 'hello there' }],
  ['record of 4', Type.Record(Type.String(), Type.Integer()), { a: 1, b: 2, c: 3, d: 4 }]
]

interface CheckCost { nanosecondsPerCheck: number, scavenges: number, bytesPerCheck: number }

/** The size of the young generation's semi-space the check measure runs with (`--max-semi-space-size`). */
const semiSpaceBytes = 1024 * 1024

/**
 * The cost of one compiled check on a valid payload of each shape. Allocation is counted by the
 * young-generation collections (scavenges) that many checks cause with a 1 MiB semi-space: none means
 * no allocation; each one means about 1 MiB allocated.
 */
async function measureChecks (): Promise<Record<string, CheckCost>> {
  const checks = compileMessageSchemas('messages', Object.fromEntries(shapes.map(([name, schema]) => [name, schema])))
  const results: Record<string, CheckCost> = {}
  for (const [name, , payload] of shapes) {
    const compiled = checks?.get(name)
    if (compiled === undefined) {
      throw new Error(`${name} has no check`)
    }
    results[name] = await measureCheck(value => compiled.Check(value), payload)
  }
  // A control that allocates one small array per call, to show that the measure sees allocation.
  const sink: unknown[] = []
  results['control: one array per call'] = await measureCheck(value => { sink[0] = [value]; return true }, 1)
  return results
}

async function measureCheck (check: (value: unknown) => boolean, payload: unknown): Promise<CheckCost> {
  const iterations = 10_000_000
  runChecks(check, payload, iterations / 10)
  globalThis.gc?.() // an empty young generation, so that the warm-up's garbage is not counted
  let scavenges = 0
  const observer = new PerformanceObserver(list => {
    scavenges += list.getEntries().filter(entry => (entry as PerformanceEntry & { detail: { kind: number } }).detail.kind === constants.NODE_PERFORMANCE_GC_MINOR).length
  })
  observer.observe({ entryTypes: ['gc'] })
  const start = process.hrtime.bigint()
  const valid = runChecks(check, payload, iterations)
  const nanoseconds = Number(process.hrtime.bigint() - start)
  await new Promise(resolve => setTimeout(resolve, 200)) // gc entries are delivered asynchronously
  observer.disconnect()
  if (valid !== iterations) {
    throw new Error('the payload should be valid')
  }
  return {
    nanosecondsPerCheck: Number((nanoseconds / iterations).toFixed(1)),
    scavenges,
    bytesPerCheck: Number((scavenges * semiSpaceBytes / iterations).toFixed(2))
  }
}

/** Server `message` events per second for a burst of `messageCount` frames from one linked client. */
async function measureInbound (options: LinkServerOptions): Promise<number> {
  const app = Fastify()
  await app.register(fastifyLinkServer, { pingIntervalMilliseconds: 0, rateLimit: false, ...options }) // a burst is the load, not an abuse
  await app.listen({ port: 0, host: '127.0.0.1' })
  const { port } = app.server.address() as { port: number }
  const ws = new WebSocket(`ws://127.0.0.1:${port}/`)
  await once(ws, 'open')
  const linked = new Promise(resolve => app.linkServer.once('link', resolve))
  ws.send(JSON.stringify({ type: 'krmx/link', payload: { username: 'bench', version: '0.6.0' } }))
  await linked
  let received = 0
  let start = 0n
  const done = new Promise<bigint>(resolve => {
    app.linkServer.on('message', () => {
      if (received === 0) {
        start = process.hrtime.bigint()
      }
      if (++received === messageCount) {
        resolve(process.hrtime.bigint())
      }
    })
  })
  const data = JSON.stringify(frame)
  for (let i = 0; i < messageCount; i++) {
    ws.send(data)
  }
  const end = await done
  ws.terminate()
  await app.close()
  return (messageCount - 1) / (Number(end - start) / 1e9)
}

const variants: Array<[string, LinkServerOptions]> = [
  ['no schemas', {}],
  ['schemas', { messages }],
  ['schemas, strictMessages', { messages, strictMessages: true }]
]

if (values['checks-only'] === true) {
  console.log(JSON.stringify(await measureChecks()))
  process.exit(0)
}
// The check measure needs a small young generation, so it runs in a child process of its own.
const check = JSON.parse(execFileSync(process.execPath, [
  `--max-semi-space-size=${semiSpaceBytes / 1024 / 1024}`, '--expose-gc', '--import', 'tsx', fileURLToPath(import.meta.url), '--checks-only'
], { encoding: 'utf8' })) as Record<string, CheckCost>
const samples = new Map<string, number[]>(variants.map(([name]) => [name, []]))
for (let run = 0; run < runs; run++) {
  for (const [name, options] of variants) {
    samples.get(name)?.push(await measureInbound(options))
  }
}
const baseline = median(samples.get('no schemas') ?? [])
const inbound = Object.fromEntries(variants.map(([name]) => {
  const perSecond = median(samples.get(name) ?? [])
  return [name, { messagesPerSecond: Math.round(perSecond), ratio: Number((perSecond / baseline).toFixed(3)) }]
}))
console.log(JSON.stringify({
  node: process.version,
  check,
  inbound: { messages: messageCount, runs, ...inbound }
}, null, 2))
