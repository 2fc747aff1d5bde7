// Rooms across a cluster on a real Redis: the API on a room from an instance with no connection in it, rooms
// spread over instances (each doing Redis work for its own rooms only), windows in rooms no instance serves, maxRooms
// cluster-wide, and an instance killed (SIGKILL) holding users in several rooms.
import type { FastifyInstance } from 'fastify'
import { Redis } from 'ioredis'
import t, { type Test } from 'tap'
import { connect } from '../helpers/clients.js'
import { linkTo, node, nodeTimeoutMilliseconds, type NodeOptions, replay, spawnNodeProcess } from '../helpers/cluster.js'
import { record } from '../helpers/events.js'
import { frames } from '../helpers/frames.js'
import { RedisServer } from '../helpers/redis-server.js'
import { eventually, settlesTo } from '../helpers/waits.js'

const { accepted, joined, linked, unlinked, left, rejected } = frames
const path = '/link/:room'
const redis = await RedisServer.start(t)
const admin = new Redis(redis.url)
t.teardown(() => admin.disconnect())
let namespaces = 0

/** Instances of one new namespace, rooms on. */
function cluster (t: Test, options: NodeOptions = {}): (nodeId: string) => Promise<FastifyInstance> {
  const namespace = `rooms-${++namespaces}`
  return async nodeId => await node(t, redis, nodeId, { path, ...options }, namespace)
}

/** How many channels each connection of instance `nodeId` is subscribed to: its messages (2 a room), its logs (1 a room). */
async function subscriptions (nodeId: string): Promise<{ messages: number, logs: number }> {
  const lines = (await admin.client('LIST') as string).split('\n')
  const count = (name: string): number => Number(/ sub=(\d+)/.exec(lines.find(line => line.includes(`name=fastify-link-server:${nodeId}:${name} `)) as string)?.[1])
  return { messages: count('subscriber'), logs: count('reader') }
}

t.test('the API on a room from an instance with no connection in it: broadcast, send, join, kick, and reads once loaded', async t => {
  const start = cluster(t)
  const a = await start('a')
  const b = await start('b')
  const alice = await connect(a, '/link/42')
  t.strictSame(await alice.linked('alice', 3), [accepted, joined('alice'), linked('alice')])
  t.strictSame(await subscriptions('b'), { messages: 0, logs: 0 }, 'b serves no room')
  const room = b.linkServer.room('42')
  t.throws(() => room.getUsers(), { code: 'FST_LINK_ROOM_NOT_LOADED', message: 'Cannot read room "42": this instance does not serve it, so its users are not loaded here; await linkServer.room(name).load() first' })
  room.broadcast({ type: 'news', payload: 'from b' })
  t.strictSame(await alice.take(1), [{ type: 'news', payload: 'from b' }], 'a broadcast needs no load')
  room.send('alice', { type: 'note', payload: 'to alice' })
  t.strictSame(await alice.take(1), [{ type: 'note', payload: 'to alice' }], 'a send goes once the room is loaded')
  await room.load()
  t.strictSame([room.getUsers(), room.getUser('alice'), room.isLinked('alice')], [[{ username: 'alice', isLinked: true }], { username: 'alice', isLinked: true }, true])
  t.strictSame(await subscriptions('b'), { messages: 2, logs: 1 }, 'b serves room 42 now, and only it')
  const eventsB = record(b)
  await room.join('bob')
  t.strictSame(await alice.take(1), [joined('bob')])
  await room.kick('bob')
  t.strictSame(await alice.take(1), [left('bob')])
  t.strictSame(eventsB, [['join', 'bob', 'room:42'], ['leave', 'bob', 'room:42']], 'the instance that made a change emits its events')
  t.strictSame([await a.linkServer.getRooms(), await b.linkServer.getRooms()], [['42'], ['42']], 'every instance lists the rooms of the cluster')
  await t.rejects(b.linkServer.room('43').kick('nobody'), { code: 'FST_LINK_UNKNOWN_USER' }, 'a room that does not exist has no one to kick')
  await t.rejects(b.linkServer.room('44').unlink('nobody'), { code: 'FST_LINK_UNKNOWN_USER' }, 'nor to unlink')
  t.throws(() => b.linkServer.room('43').unlink('nobody'), { code: 'FST_LINK_UNKNOWN_USER' }, 'loaded now: what b can see is thrown at once')
  t.strictSame(await settlesTo(async () => await subscriptions('b'), { messages: 0, logs: 0 }, 4 * nodeTimeoutMilliseconds + 3_000),
    { messages: 0, logs: 0 }, 'b gives the rooms up once its API left them alone for twice the node timeout')
})

t.test('rooms spread over 3 instances: each room one user space, each instance subscribed to the rooms it serves only', async t => {
  const start = cluster(t)
  const nodes = [await start('a'), await start('b'), await start('c')]
  const placement: Array<[string, number, string]> = [['r1', 0, 'ann'], ['r1', 1, 'bob'], ['r2', 1, 'ann'], ['r2', 2, 'cat'], ['r3', 2, 'dan'], ['r4', 0, 'ann']]
  const clients = []
  for (const [room, at, username] of placement) {
    const client = await connect(nodes[at], `/link/${room}`)
    await client.linked(username, 1)
    clients.push(client)
  }
  const expected: Record<string, string[]> = { r1: ['ann', 'bob'], r2: ['ann', 'cat'], r3: ['dan'], r4: ['ann'] }
  for (const [room, usernames] of Object.entries(expected)) {
    const users = usernames.map(username => ({ username, isLinked: true }))
    await eventually(() => placement.every(([r, at]) => r !== room || JSON.stringify(nodes[at].linkServer.room(room).getUsers()) === JSON.stringify(users)),
      () => `room ${room}: ${JSON.stringify(nodes.map(app => { try { return app.linkServer.room(room).getUsers() } catch { return 'not served' } }))}`)
  }
  t.strictSame(clients.map(client => replay(client.frames())), placement.map(([room]) => expected[room].map(username => ({ username, isLinked: true }))),
    'every client sees its own room only')
  t.strictSame(await Promise.all(['a', 'b', 'c'].map(subscriptions)), [{ messages: 4, logs: 2 }, { messages: 4, logs: 2 }, { messages: 4, logs: 2 }],
    'a serves r1 and r4, b r1 and r2, c r2 and r3: nothing of the rooms of the others')
  t.strictSame(await nodes[2].linkServer.getRooms(), ['r1', 'r2', 'r3', 'r4'])
  t.strictSame(nodes.map(app => app.linkServer.getStats().rooms), [2, 2, 2], 'each instance counts the rooms it serves')
})

t.test('a reconnection window ends in a room no instance serves: a heartbeat takes the room, and its user leaves', async t => {
  const start = cluster(t, { reconnectWindowMilliseconds: 1_500 })
  const a = await start('a')
  const b = await start('b')
  const eventsB = record(b)
  const alice = await connect(a, '/link/w')
  await alice.linked('alice', 3)
  await a.close()
  t.strictSame(await alice.closed(), { code: 1001, reason: 'server closing' })
  t.strictSame(await subscriptions('b'), { messages: 0, logs: 0 }, 'no instance serves room w')
  await eventually(() => eventsB.length === 2, () => JSON.stringify(eventsB), 1_500 + 2 * nodeTimeoutMilliseconds)
  t.strictSame(eventsB, [['leave', 'alice', 'room:w'], ['roomEnd', 'room:w']], 'the instance whose heartbeat took the room made the leave, and emits it')
  t.strictSame(await b.linkServer.getRooms(), [])
})

t.test('maxRooms bounds the rooms of the whole cluster, and acceptNewRooms: false holds on every instance', async t => {
  const start = cluster(t, { maxRooms: 2 })
  const a = await start('a')
  const b = await start('b')
  await (await connect(a, '/link/one')).linked('ann', 3)
  await (await connect(b, '/link/two')).linked('bob', 3)
  const third = await connect(a, '/link/three')
  t.strictSame(await third.linked('cat', 1), [rejected('server is full')])
  await t.rejects(b.linkServer.room('four').join('dan'), { code: 'FST_LINK_TOO_MANY_ROOMS', message: 'Cannot create room "four": 2 rooms exist (maxRooms)' })
  t.strictSame(await (await connect(b, '/link/one')).linked('eve', 5), [accepted, joined('ann'), linked('ann'), joined('eve'), linked('eve')],
    'a room that exists takes users from any instance')

  const closed = cluster(t, { acceptNewRooms: false })
  const c = await closed('c')
  const d = await closed('d')
  await c.linkServer.room('made').join('host')
  t.strictSame(await (await connect(d, '/link/made')).linked('guest', 4), [accepted, joined('host'), joined('guest'), linked('guest')])
  t.strictSame(await (await connect(d, '/link/other')).linked('guest', 1), [rejected('room other does not exist')])
})

t.test('an instance killed (SIGKILL) with users in several rooms: every room sweeps them, served by others or not', async t => {
  const namespace = `rooms-${++namespaces}`
  const a = await spawnNodeProcess(t, redis, 'a', namespace, { path })
  const c = await node(t, redis, 'c', { path }, namespace)
  const eventsC = record(c)
  await linkTo(a.port, 'ann', 3, '/link/shared')
  await linkTo(a.port, 'ann', 3, '/link/alone')
  await linkTo(a.port, 'bob', 5, '/link/alone')
  const watcher = await connect(c, '/link/shared')
  t.strictSame(await watcher.linked('cat', 5), [accepted, joined('ann'), linked('ann'), joined('cat'), linked('cat')])
  a.child.kill('SIGKILL')
  t.strictSame(await watcher.take(1, nodeTimeoutMilliseconds + 1_500), [unlinked('ann')], 'a room c serves: its heartbeat there sweeps')
  await eventually(() => eventsC.length === 5, () => JSON.stringify(eventsC), 3 * nodeTimeoutMilliseconds + 1_500)
  t.strictSame(eventsC.slice(2).sort(), [['unlink', 'ann', 'room:alone'], ['unlink', 'ann', 'room:shared'], ['unlink', 'bob', 'room:alone']].sort(),
    'a room no one served: c\'s heartbeat found a dead, took its rooms, and swept them')
  await c.linkServer.room('alone').load()
  t.strictSame(c.linkServer.room('alone').getUsers(), [{ username: 'ann', isLinked: false }, { username: 'bob', isLinked: false }])
})
