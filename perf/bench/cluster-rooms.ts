// npm run bench:cluster-rooms [-- --quick]
//
// Rooms in cluster mode: a redis-server of its own (free loopback port, persistence off) and two instances of the
// plugin in this process, rooms on. Prints what Redis holds for a room and for a user, and how many commands an
// idle instance sends Redis with 10 rooms, then with 1,000 rooms, on the other instance (it should not grow: an
// instance does Redis work only for the rooms it serves), and the busy instance's own rate beside it.
// Method and figures: docs/benchmarks.md#rooms-in-cluster-mode.
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { writeFileSync } from 'node:fs'
import { createServer } from 'node:net'
import Fastify, { type FastifyInstance } from 'fastify'
import { Redis } from 'ioredis'
import fastifyLinkServer from '../../index.js'
import { clientFrame, RawClient } from '../../support/raw-client.js'

const quick = process.argv.includes('--quick')
const roomCount = quick ? 200 : 1_000
const windowSeconds = quick ? 5 : 10
const version = '0.6.0'

async function freePort (): Promise<number> {
  const server = createServer().listen(0, '127.0.0.1')
  await once(server, 'listening')
  const { port } = server.address() as { port: number }
  server.close()
  return port
}

const port = await freePort()
const redisServer = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--loglevel', 'warning'], { stdio: 'ignore' })
process.once('exit', () => redisServer.kill('SIGKILL')) // also when the benchmark fails: it ends the Redis it started
const redisUrl = `redis://127.0.0.1:${port}`
const admin = new Redis(redisUrl, { retryStrategy: () => 50 })
admin.on('error', () => {}) // until redis-server listens
await new Promise(resolve => admin.once('ready', resolve))

async function instance (nodeId: string): Promise<{ app: FastifyInstance, port: number }> {
  const app = Fastify()
  await app.register(fastifyLinkServer, { path: '/link/:room', pingIntervalMilliseconds: 0, cluster: { redis: redisUrl, nodeId, namespace: 'bench' } })
  await app.listen({ port: 0, host: '127.0.0.1' })
  return { app, port: (app.server.address() as { port: number }).port }
}

/** Links `username` into `room` on `port`; resolves when its own krmx/linked (the last frame of the user list) arrives. */
async function link (port: number, room: string, username: string): Promise<RawClient> {
  const client = await RawClient.open(port, `/link/${room}`)
  const own = Buffer.from(JSON.stringify({ type: 'krmx/linked', payload: { username } }))
  await new Promise<void>(resolve => {
    client.onFrame = payload => { if (payload.equals(own)) resolve() }
    client.send(clientFrame(JSON.stringify({ type: 'krmx/link', payload: { username, version } })))
  })
  client.onFrame = () => {}
  return client
}

async function linkAll (port: number, rooms: string[], username: string): Promise<RawClient[]> {
  const clients: RawClient[] = []
  for (let i = 0; i < rooms.length; i += 50) {
    clients.push(...await Promise.all(rooms.slice(i, i + 50).map(async room => await link(port, room, username))))
  }
  return clients
}

async function usedMemory (): Promise<number> {
  return Number(/used_memory:(\d+)/.exec(await admin.info('memory'))?.[1])
}

/** The commands each instance's connections send Redis, per second, over `seconds` (counted with MONITOR). */
async function commandRates (nodeIds: string[], seconds: number): Promise<Record<string, number>> {
  const lines = (await admin.client('LIST') as string).split('\n')
  const owner = new Map<string, string>()
  for (const line of lines) {
    const name = /name=fastify-link-server:([^:\s]+):/.exec(line)?.[1]
    const address = /addr=(\S+)/.exec(line)?.[1]
    if (name !== undefined && address !== undefined) owner.set(address, name)
  }
  const counts = Object.fromEntries(nodeIds.map(id => [id, 0]))
  const connection = admin.duplicate()
  const monitor = await connection.monitor()
  monitor.on('monitor', (_time: string, _args: string[], source: string) => {
    const node = owner.get(source)
    if (node !== undefined) counts[node]++
  })
  await new Promise(resolve => setTimeout(resolve, seconds * 1000))
  monitor.disconnect()
  connection.disconnect()
  return Object.fromEntries(Object.entries(counts).map(([id, count]) => [id, count / seconds]))
}

const busy = await instance('busy')
const idle = await instance('idle')
await new Promise(resolve => setTimeout(resolve, 1_500))
const baseline = await usedMemory()
const rooms = Array.from({ length: roomCount }, (_, i) => `room-${i}`)
const clients: RawClient[] = []

clients.push(...await linkAll(busy.port, rooms.slice(0, 10), 'ann'))
await new Promise(resolve => setTimeout(resolve, 1_500))
const with10 = await commandRates(['busy', 'idle'], windowSeconds)
console.log(`10 rooms on the busy instance: idle ${with10.idle.toFixed(1)} commands/s, busy ${with10.busy.toFixed(1)} commands/s`)

clients.push(...await linkAll(busy.port, rooms.slice(10), 'ann'))
const oneUser = await usedMemory()
clients.push(...await linkAll(busy.port, rooms, 'bob'))
const twoUsers = await usedMemory()
await new Promise(resolve => setTimeout(resolve, 1_500))
const withAll = await commandRates(['busy', 'idle'], windowSeconds)
console.log(`${roomCount} rooms on the busy instance: idle ${withAll.idle.toFixed(1)} commands/s, busy ${withAll.busy.toFixed(1)} commands/s`)

// A third user of every room, on the other instance: the rooms are spread over both.
clients.push(...await linkAll(idle.port, rooms, 'cat'))
const spread = await usedMemory()
const perUser = (spread - twoUsers) / roomCount
const perUserSameInstance = (twoUsers - oneUser) / roomCount
const perRoom = (oneUser - baseline) / roomCount - perUserSameInstance
console.log(`Redis memory: ${Math.round(perRoom)} bytes a room (its keys, without users), ${Math.round(perUserSameInstance)} bytes a user; ` +
  `${Math.round(perUser)} bytes a user linked from the other instance (which then serves the room too)`)
const served = await admin.smembers('{bench}:served:idle')
console.log(`the idle instance serves ${served.length} rooms after its users linked`)

const result = {
  date: new Date().toISOString().slice(0, 10),
  command: `npm run bench:cluster-rooms${quick ? ' -- --quick' : ''}`,
  rooms: roomCount,
  idleCommandsPerSecond: { with10Rooms: with10.idle, [`with${roomCount}Rooms`]: withAll.idle },
  busyCommandsPerSecond: { with10Rooms: with10.busy, [`with${roomCount}Rooms`]: withAll.busy },
  redisBytes: { perRoom: Math.round(perRoom), perUser: Math.round(perUserSameInstance), perUserFromAnotherInstance: Math.round(perUser) }
}
if (!quick) writeFileSync(new URL('../results/cluster-rooms.json', import.meta.url), JSON.stringify(result, null, 2) + '\n')
for (const client of clients) client.close()
await Promise.all([busy.app.close(), idle.app.close()])
admin.disconnect()
redisServer.kill('SIGKILL')
