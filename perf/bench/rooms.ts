// npm run bench:rooms: many small rooms on one instance, this plugin beside Socket.IO 4 doing the same work. The
// server runs in a process of its own (perf/bench/rooms-server.ts); the clients are raw loopback sockets in this
// process, the same for both servers (support/raw-client.ts), so that neither pays for a heavier client library.
// Method and figures: docs/benchmarks.md#rooms.
import { type ChildProcess, fork } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import { performance } from 'node:perf_hooks'
import { clientFrame, linkAs, RawClient } from '../../support/raw-client.js'
import { ask, reply } from './ipc.js'
import type { RoomsServerKind } from './rooms-server.js'

const here = (file: string): string => new URL(file, import.meta.url).pathname
const quick = process.argv.includes('--quick')
/** Rooms of four users (a table of a game, a small call), as many as make 8,000 connections. */
const roomCount = quick ? 200 : 2_000
const roomSize = 4
const concurrency = 50

interface Server { child: ChildProcess, port: number, kind: RoomsServerKind }

async function startServer (kind: RoomsServerKind): Promise<Server> {
  const child = fork(here('rooms-server.ts'), [kind], { execArgv: ['--expose-gc', '--import', 'tsx'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
  const { port } = await reply<{ port: number }>(child)
  return { child, port, kind }
}

async function stopServer (server: Server, clients: RawClient[]): Promise<void> {
  for (const client of clients) client.close()
  const exited = new Promise(resolve => server.child.once('exit', resolve))
  server.child.send({ cmd: 'close' })
  await exited
}

/** A client of `room`: linked as `username` (the plugin), or connected and joined to the room (Socket.IO). */
async function enter (server: Server, room: string, username: string): Promise<RawClient> {
  if (server.kind === 'plugin') {
    return await linkAs(server.port, `/link/${room}`, username)
  }
  // Engine.IO 4 over a WebSocket: the open packet, the namespace's connect, then an event with an ack that joins the room.
  const client = await RawClient.open(server.port, '/socket.io/?EIO=4&transport=websocket')
  await new Promise<void>(resolve => {
    client.onFrame = payload => {
      const text = payload.toString()
      if (text.startsWith('0{')) {
        client.send(clientFrame('40'))
      } else if (text.startsWith('40{')) {
        client.send(clientFrame(`421["join",${JSON.stringify(room)}]`))
      } else if (text === '431[]') {
        resolve()
      }
    }
  })
  client.onFrame = payload => { if (payload.length === 1 && payload[0] === 0x32) client.send(clientFrame('3')) } // Engine.IO's ping
  return client
}

/** Fills `rooms` rooms named `<prefix><i>` with `size` clients each, `concurrency` at a time; answers links per second. */
async function fill (server: Server, prefix: string, rooms: number, size: number, clients: RawClient[]): Promise<number> {
  const targets: Array<[string, string]> = []
  for (let user = 0; user < size; user++) {
    for (let room = 0; room < rooms; room++) {
      targets.push([`${prefix}${room}`, `u${user}`])
    }
  }
  let next = 0
  const start = performance.now()
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (next < targets.length) {
      const [room, username] = targets[next++]
      clients.push(await enter(server, room, username))
    }
  }))
  return targets.length / ((performance.now() - start) / 1000)
}

/** Each client leaves its room (the plugin: `krmx/leave`, Socket.IO: the socket closes), and closes. */
async function leaveAll (clients: RawClient[]): Promise<void> {
  for (const client of clients) {
    client.send(clientFrame('{"type":"krmx/leave"}'))
    client.close()
  }
  await new Promise(resolve => setTimeout(resolve, 200))
}

async function heap (server: Server): Promise<number> {
  return (await ask<{ heapUsed: number }>(server.child, { cmd: 'memory' })).heapUsed
}

/** Every room gets `count` broadcasts of `size` bytes, one to each room per turn; answers deliveries per second. */
async function fanout (server: Server, rooms: string[], clients: RawClient[], count: number): Promise<number> {
  const marker = Buffer.from(server.kind === 'plugin' ? '{"type":"fan"' : '42["fan"')
  const total = rooms.length * roomSize * count
  let frames = 0
  let first = 0
  const done = new Promise<number>(resolve => {
    for (const client of clients) {
      const previous = client.onFrame
      client.onFrame = payload => {
        if (payload.subarray(0, marker.length).equals(marker)) {
          if (frames++ === 0) first = performance.now()
          if (frames === total) resolve((performance.now() - first) / 1000)
        } else {
          previous(payload)
        }
      }
    }
  })
  const started = performance.now()
  await ask(server.child, { cmd: 'fanout', rooms, count, size: 100 })
  await done
  return total / ((performance.now() - started) / 1000)
}

const median = (values: number[]): number => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]

interface Figures {
  oneRoomLinksPerSecond?: number
  oneRoomHeapPerConnection?: number
  roomsLinksPerSecond: number
  roomsHeapPerConnection: number
  linksWith20Rooms: number
  linksWith2000Rooms: number
  deliveriesPerSecond: number
  idleRoomHeap?: number
}

/** One run of every scenario on a fresh server of `kind`. */
async function run (kind: RoomsServerKind): Promise<Figures> {
  const figures: Partial<Figures> = {}
  const connections = roomCount * roomSize
  if (kind === 'plugin') {
    // The same connections in one room: every link is told of every user before it.
    const server = await startServer(kind)
    const clients: RawClient[] = []
    const before = await heap(server)
    figures.oneRoomLinksPerSecond = await fill(server, 'one', 1, connections, clients)
    figures.oneRoomHeapPerConnection = (await heap(server) - before) / connections
    await stopServer(server, clients)
  }
  const server = await startServer(kind)
  const clients: RawClient[] = []
  // A warm-up, so that what follows runs on optimized code: 250 rooms filled, then left (they end).
  const warm: RawClient[] = []
  await fill(server, 'warm', 250, roomSize, warm)
  await leaveAll(warm)
  const before = await heap(server)
  // With 20 rooms open, 250 more rooms of 4 are filled: the cost of a link with few other rooms.
  await fill(server, 'few', 20, roomSize, clients)
  figures.linksWith20Rooms = await fill(server, 'probe-a', 250, roomSize, clients)
  figures.roomsLinksPerSecond = await fill(server, 'table', roomCount, roomSize, clients)
  figures.roomsHeapPerConnection = (await heap(server) - before) / clients.length
  // The same with 2,000 more rooms open.
  figures.linksWith2000Rooms = await fill(server, 'probe-b', 250, roomSize, clients)
  const rooms = Array.from({ length: roomCount }, (_, index) => `table${index}`)
  const tables = clients.slice(270 * roomSize, 270 * roomSize + connections) // the clients of the rooms named table<i>, after few and probe-a
  figures.deliveriesPerSecond = await fanout(server, rooms, tables, quick ? 5 : 20)
  if (kind === 'plugin') {
    const idleBefore = await heap(server)
    await ask(server.child, { cmd: 'idle', prefix: 'idle', count: roomCount })
    figures.idleRoomHeap = (await heap(server) - idleBefore) / roomCount
  }
  await stopServer(server, clients)
  return figures as Figures
}

const repetitions = quick ? 1 : 3
/** `ROOMS_SERVERS=plugin` (or `socket.io`) runs one of them; the published results need both. */
const kinds = (process.env.ROOMS_SERVERS ?? 'plugin,socket.io').split(',') as RoomsServerKind[]
const results: Record<string, Figures[]> = Object.fromEntries(kinds.map(kind => [kind, []]))
for (let repetition = 0; repetition < repetitions; repetition++) {
  for (const kind of kinds) {
    results[kind].push(await run(kind))
    console.error(`run ${repetition + 1}/${repetitions} of ${kind} done`)
  }
}
const medians: Record<string, Record<string, number>> = {}
for (const [kind, runs] of Object.entries(results)) {
  medians[kind] = {}
  for (const key of Object.keys(runs[0]) as Array<keyof Figures>) {
    medians[kind][key] = median(runs.map(figures => figures[key] as number))
  }
}
const none: Record<string, number> = {}
const plugin = medians.plugin ?? none
const io = medians['socket.io'] ?? none
const round = (value: number): number => Math.round(value)
const rows = [
  ['', 'fastify-link-server', 'Socket.IO 4', 'ratio'],
  [`links/s, ${roomCount} rooms of ${roomSize}`, round(plugin.roomsLinksPerSecond), round(io.roomsLinksPerSecond), (plugin.roomsLinksPerSecond / io.roomsLinksPerSecond).toFixed(2)],
  [`links/s, one room of ${roomCount * roomSize}`, round(plugin.oneRoomLinksPerSecond), '', ''],
  [`heap per connection, ${roomCount} rooms (bytes)`, round(plugin.roomsHeapPerConnection), round(io.roomsHeapPerConnection), (plugin.roomsHeapPerConnection / io.roomsHeapPerConnection).toFixed(2)],
  ['heap per connection, one room (bytes)', round(plugin.oneRoomHeapPerConnection), '', ''],
  ['heap of an idle room, one unlinked user (bytes)', round(plugin.idleRoomHeap), '', ''],
  ['links/s into new rooms, 20 rooms open', round(plugin.linksWith20Rooms), round(io.linksWith20Rooms), ''],
  [`links/s into new rooms, ${roomCount} rooms open`, round(plugin.linksWith2000Rooms), round(io.linksWith2000Rooms), ''],
  [`  ratio ${roomCount} / 20 rooms open (at least 0.8)`, (plugin.linksWith2000Rooms / plugin.linksWith20Rooms).toFixed(2), (io.linksWith2000Rooms / io.linksWith20Rooms).toFixed(2), ''],
  ['room broadcast deliveries/s (100 B to 4 users)', round(plugin.deliveriesPerSecond), round(io.deliveriesPerSecond), (plugin.deliveriesPerSecond / io.deliveriesPerSecond).toFixed(2)]
]
for (const row of rows) {
  console.log(row.map((cell, index) => String(cell).padStart(index === 0 ? 0 : 20).padEnd(index === 0 ? 48 : 0)).join(''))
}
if (!quick && kinds.length === 2) {
  writeFileSync(new URL('../results/rooms.json', import.meta.url), JSON.stringify({ roomCount, roomSize, repetitions, results, medians }, null, 2) + '\n')
}
