// npm run bench:cluster-rooms [-- --quick]
//
// Rooms in cluster mode: a redis-server of its own (free loopback port, persistence off) and two instances of the
// plugin in this process, rooms on. Prints what Redis holds for a room and for a user, and how many commands an
// idle instance sends Redis with 10 rooms, then with 1,000 rooms, on the other instance (it should not grow: an
// instance does Redis work only for the rooms it serves), and the busy instance's own rate beside it.
// Method and figures: docs/benchmarks.md#rooms-in-cluster-mode.
import { writeFileSync } from 'node:fs'
import Fastify, { type FastifyInstance } from 'fastify'
import fastifyLinkServer from '../../index.js'
import { linkAs, type RawClient } from '../../support/raw-client.js'
import { startRedis } from './redis-server.js'

const quick = process.argv.includes('--quick')
const roomCount = quick ? 200 : 1_000
const windowSeconds = quick ? 5 : 10

const { url: redisUrl, admin, stop: stopRedis } = await startRedis()

async function instance (nodeId: string): Promise<{ app: FastifyInstance, port: number }> {
  const app = Fastify()
  await app.register(fastifyLinkServer, { path: '/link/:room', pingIntervalMilliseconds: 0, cluster: { redis: redisUrl, nodeId, namespace: 'bench' } })
  await app.listen({ port: 0, host: '127.0.0.1' })
  return { app, port: (app.server.address() as { port: number }).port }
}

async function linkAll (port: number, rooms: string[], username: string): Promise<RawClient[]> {
  const clients: RawClient[] = []
  for (let i = 0; i < rooms.length; i += 50) {
    clients.push(...await Promise.all(rooms.slice(i, i + 50).map(async room => await linkAs(port, `/link/${room}`, username))))
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
stopRedis()
