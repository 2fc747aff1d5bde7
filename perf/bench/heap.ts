// npm run bench:heap [-- --connections 2000 --servers plugin,bare]
//
// Where the heap of an idle linked connection goes: for each server, a heap snapshot (after a full
// collection) before and after `--connections` raw clients link, and the difference summed by what V8
// calls each object (its constructor, or the kind of internal object), divided by the connections.
// Prints the largest rows of each server side by side; the servers and load generator are those of
// `npm run bench` (perf/bench/servers.ts), in processes of their own.
import { fork } from 'node:child_process'
import { once } from 'node:events'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { ask, reply } from './ipc.js'

const { values } = parseArgs({ options: { connections: { type: 'string', default: '2000' }, servers: { type: 'string', default: 'plugin,bare' }, rows: { type: 'string', default: '25' } } })
const connections = Number(values.connections)
const here = (file: string): string => fileURLToPath(new URL(file, import.meta.url))
const folder = mkdtempSync(join(tmpdir(), 'heap-'))

interface Snapshot {
  snapshot: { meta: { node_fields: string[], node_types: [string[]] } }
  nodes: number[]
  strings: string[]
}

/** Self sizes and counts by `type:name` (objects by constructor); strings, code and the like by their kind alone. */
export function summarize (snapshot: Snapshot): Map<string, { bytes: number, count: number }> {
  const fields = snapshot.snapshot.meta.node_fields
  const types = snapshot.snapshot.meta.node_types[0]
  const [type, name, size] = ['type', 'name', 'self_size'].map(field => fields.indexOf(field))
  const sums = new Map<string, { bytes: number, count: number }>()
  for (let index = 0; index < snapshot.nodes.length; index += fields.length) {
    const kind = types[snapshot.nodes[index + type]]
    const key = kind === 'object' || kind === 'closure' || kind === 'hidden' || kind === 'array' || kind === 'object shape'
      ? `${kind}: ${snapshot.strings[snapshot.nodes[index + name]].slice(0, 60)}`
      : kind
    const sum = sums.get(key) ?? { bytes: 0, count: 0 }
    sum.bytes += snapshot.nodes[index + size]
    sum.count++
    sums.set(key, sum)
  }
  return sums
}

async function measure (kind: string): Promise<Map<string, { bytes: number, count: number }>> {
  const server = fork(here('server-process.ts'), [kind], { execArgv: ['--expose-gc', '--import', 'tsx'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
  const { port } = await reply<{ port: number }>(server)
  const load = fork(here('load-process.ts'), [String(port)], { execArgv: ['--import', 'tsx'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
  await reply(load)
  try {
    const before = await ask<{ file: string }>(server, { cmd: 'snapshot', file: join(folder, `${kind}-before.heapsnapshot`) })
    await ask(load, { cmd: 'link', count: connections, concurrency: 100 })
    const after = await ask<{ file: string }>(server, { cmd: 'snapshot', file: join(folder, `${kind}-after.heapsnapshot`) })
    const [a, b] = [before, after].map(({ file }) => summarize(JSON.parse(readFileSync(file, 'utf8')) as Snapshot))
    const diff = new Map<string, { bytes: number, count: number }>()
    for (const [key, { bytes, count }] of b) {
      const old = a.get(key) ?? { bytes: 0, count: 0 }
      diff.set(key, { bytes: (bytes - old.bytes) / connections, count: (count - old.count) / connections })
    }
    return diff
  } finally {
    const exited = Promise.all([once(load, 'exit'), once(server, 'exit')])
    load.kill()
    server.send({ cmd: 'close' })
    await exited
  }
}

const servers = (values.servers as string).split(',')
const results = new Map<string, Map<string, { bytes: number, count: number }>>()
try {
  for (const kind of servers) {
    results.set(kind, await measure(kind))
  }
} finally {
  rmSync(folder, { recursive: true, force: true })
}
const total = (kind: string): number => [...(results.get(kind) ?? new Map<string, { bytes: number }>()).values()].reduce((sum, { bytes }) => sum + bytes, 0)
const keys = new Set<string>()
for (const result of results.values()) {
  for (const [key, { bytes }] of [...result].sort(([, a], [, b]) => b.bytes - a.bytes).slice(0, Number(values.rows))) {
    if (bytes > 0) keys.add(key)
  }
}
const largest = (key: string): number => Math.max(...[...results.values()].map(result => result.get(key)?.bytes ?? 0))
console.log(`heap per idle linked connection, ${connections.toLocaleString('en')} connections: bytes (objects) by what V8 calls them`)
console.log(`| what | ${servers.join(' | ')} |`)
console.log(`|---|${servers.map(() => '---:').join('|')}|`)
for (const key of [...keys].sort((a, b) => largest(b) - largest(a))) {
  console.log(`| ${key} | ${servers.map(kind => { const row = results.get(kind)?.get(key); return row === undefined ? '' : `${Math.round(row.bytes)} (${row.count.toFixed(2)})` }).join(' | ')} |`)
}
console.log(`| **all** | ${servers.map(kind => `**${Math.round(total(kind))}**`).join(' | ')} |`)
