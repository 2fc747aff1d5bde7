// Rooms in a cluster when Redis fails: an outage and a restart that lost the data, two instances given one id, what a
// link that never came leaves in the registry, a room's incarnation that ended, a lost reply of the registry.
import { Redis } from 'ioredis'
import t from 'tap'
import { dropRoomScript } from '../../lib/backend/redis/lua-rooms.js'
import { connect } from '../helpers/clients.js'
import { node } from '../helpers/cluster.js'
import { LogRecorder, record } from '../helpers/events.js'
import { frames } from '../helpers/frames.js'
import { RedisServer } from '../helpers/redis-server.js'
import { ReplyCutter } from '../helpers/reply-cutter.js'
import { eventually, settlesTo, unhandledRejections } from '../helpers/waits.js'

const { accepted, joined, linked, unlinked, left, rejected } = frames
const path = '/link/:room'
const redis = await RedisServer.start(t)

t.test('Redis stopped, then restarted empty: rooms refuse meanwhile with coded errors, then come back whole, the registry too', async t => {
  const rejections = unhandledRejections(t)
  const logs = new LogRecorder()
  const a = await node(t, redis, 'a', { path, health: true, fastify: { logger: { level: 'info', stream: logs.stream } } }, 'outage')
  const b = await node(t, redis, 'b', { path }, 'outage')
  const alice = await connect(a, '/link/x')
  await alice.linked('alice', 3)
  const bob = await connect(b, '/link/y')
  await bob.linked('bob', 3)
  await redis.stop()
  await eventually(() => logs.lines.some(line => line.msg === 'the cluster is unavailable: Redis does not answer'), () => JSON.stringify(logs.lines))
  t.strictSame((await a.inject('/health/ready')).json(), { status: 'not ready', reason: 'the cluster is unavailable: Redis does not answer' })
  const newcomer = await connect(a, '/link/z')
  t.strictSame(await newcomer.linked('carol', 1), [rejected('cluster unavailable')], 'a room that cannot be served refuses links')
  await t.rejects(a.linkServer.room('fresh').load(), { code: 'FST_LINK_CLUSTER_UNAVAILABLE', message: /^Cannot load a room: the cluster is unavailable \(.+\)$/ })
  await t.rejects(a.linkServer.room('other').join('dan'), { code: 'FST_LINK_CLUSTER_UNAVAILABLE' })
  a.linkServer.room('third').send('erin', { type: 'lost' })
  await eventually(() => logs.lines.some(line => line.msg === 'a message for a room this instance was loading was not sent'), () => JSON.stringify(logs.lines))
  t.match(logs.lines.find(line => line.msg === 'a message for a room this instance was loading was not sent'), { room: 'third', username: 'erin' })
  await redis.restart()
  const admin = new Redis(redis.url)
  t.teardown(() => admin.disconnect())
  t.strictSame(await settlesTo(async () => await admin.zrange('{outage:x}:users', 0, -1), ['alice']), ['alice'], 'each room\'s users are registered again')
  t.strictSame(await settlesTo(async () => await a.linkServer.getRooms(), ['x', 'y']), ['x', 'y'], 'and the registry lists their rooms again')
  t.strictSame(await settlesTo(async () => await admin.smembers('{outage}:served:a'), ['x']), ['x'],
    'the rooms a serves are listed again (not those it could not serve while Redis was away: they are served when next used)')
  await eventually(() => logs.lines.some(line => line.msg === 'the cluster is available again'), () => JSON.stringify(logs.lines))
  t.strictSame(await newcomer.linked('carol', 3), [accepted, joined('carol'), linked('carol')], 'and links are taken again')
  await a.linkServer.room('fresh').load()
  t.strictSame(a.linkServer.room('fresh').getUsers(), [])
  t.strictSame(rejections, [])
})

t.test('two instances given one nodeId, rooms on: the last to start wins every room; the other takes no more links', async t => {
  const logs = new LogRecorder()
  const first = await node(t, redis, 'twin', { path, fastify: { logger: { level: 'error', stream: logs.stream } } }, 'twins')
  const alice = await connect(first, '/link/r')
  await alice.linked('alice', 3)
  const second = await node(t, redis, 'twin', { path }, 'twins')
  t.strictSame(await alice.take(1, 10_000), [unlinked('alice')], 'the second life took the room of the first, and ended its links')
  const [line] = await logs.count(1)
  t.strictSame([line.msg, line.nodeId], ['another instance started as node twin; this instance takes no more links: give each instance a nodeId of its own', 'twin'])
  const late = await connect(first, '/link/new')
  t.strictSame(await late.linked('bob', 1), [rejected('cluster unavailable')], 'the first takes no more links, in any room')
  alice.requestLink('alice')
  t.strictSame(await alice.take(1), [rejected('cluster unavailable')])
  const bob = await connect(second, '/link/r')
  t.strictSame(await bob.linked('bob', 4), [accepted, joined('alice'), joined('bob'), linked('bob')], 'the second does')
})

t.test('a link that never came takes its room out of the registry; what a dead instance left there is pruned by listing, or past maxRooms', async t => {
  const a = await node(t, redis, 'a', {
    path,
    maxRooms: 2,
    authTimeoutMilliseconds: 100,
    setup: app => app.linkServer.on('authenticate', (_username, info, reject) => { if (info.room.name === 'refused') reject('not you') })
  }, 'ghosts')
  const admin = new Redis(redis.url)
  t.teardown(() => admin.disconnect())
  const refused = await connect(a, '/link/refused')
  t.strictSame(await refused.linked('alice', 1), [rejected('not you')])
  t.strictSame(await settlesTo(async () => await admin.hkeys('{ghosts}:rooms'), []), [], 'its release ended the room it was admitted for')
  t.equal(await admin.get('{ghosts:refused}:ended') !== null, true, 'the incarnation it was given ended: a link made with it would be refused')

  // An instance that died between admitting a room and releasing its claim leaves an entry: pruned once older than a
  // claim lives (100 ms + 5 s here); a younger one may still become a link, and is kept.
  const [seconds] = await admin.time()
  const now = Number(seconds) * 1000
  await admin.hset('{ghosts}:rooms', 'old', `${now - 60_000}-dead`, 'young', `${now}-pending`)
  t.strictSame(await a.linkServer.getRooms(), ['young'], 'listing pruned the old entry, and kept the young one')
  await admin.hset('{ghosts}:rooms', 'old', `${now - 60_000}-dead`)
  t.strictSame(await (await connect(a, '/link/real')).linked('bob', 3), [accepted, joined('bob'), linked('bob')],
    'with maxRooms 2 full of entries, one more room prunes them, and is made')
  t.strictSame((await admin.hkeys('{ghosts}:rooms')).sort(), ['real', 'young'])
  t.strictSame(await (await connect(a, '/link/third')).linked('cat', 1), [rejected('server is full')], 'what is not a ghost still counts')
})

t.test('a room whose incarnation ended refuses a link made with it: the registry gives a new one, and the link is taken', async t => {
  const a = await node(t, redis, 'a', { path }, 'stale')
  const admin = new Redis(redis.url)
  t.teardown(() => admin.disconnect())
  const [seconds] = await admin.time()
  const ended = `${Number(seconds) * 1000}-ended`
  await admin.hset('{stale}:rooms', 'old', ended) // the room ended, the registry has not removed it yet
  await admin.set('{stale:old}:ended', ended)
  const alice = await connect(a, '/link/old')
  t.strictSame(await alice.linked('alice', 3), [accepted, joined('alice'), linked('alice')])
  const incarnation = await admin.hget('{stale}:rooms', 'old')
  t.not(incarnation, ended, 'a new incarnation')
  t.equal(await admin.get('{stale:old}:inc'), incarnation, 'the room has it')
  alice.send({ type: 'krmx/leave' })
  t.strictSame(await alice.take(2), [unlinked('alice'), left('alice')])
  t.strictSame(await settlesTo(async () => await admin.hkeys('{stale}:rooms'), []), [], 'its end removed it from the registry')
})

t.test('a room that ended but whose removal from the registry was lost is said so, and listed until pruned', async t => {
  const cutter = await ReplyCutter.start(t, redis.port)
  const logs = new LogRecorder()
  const a = await node(t, redis, 'a', {
    path,
    cluster: { redis: cutter.url },
    fastify: { logger: { level: 'warn', stream: logs.stream } },
    setup: app => app.linkServer.on('authenticate', (_username, info, reject) => { if (info.room.name === 'refused') reject('not you') })
  }, 'lost-drop')
  const events = record(a)
  const alice = await connect(a, '/link/gone')
  await alice.linked('alice', 3)
  cutter.cutReplyTo(dropRoomScript)
  alice.send({ type: 'krmx/leave' })
  t.strictSame(await alice.take(2), [unlinked('alice'), left('alice')])
  const [line] = await logs.count(1)
  t.match(line, { msg: 'an ended room could not be removed from the registry; listing the rooms removes it', room: 'gone' })
  t.strictSame(events.at(-1), ['roomEnd', 'room:gone'])

  const back = await settlesTo(async () => await a.linkServer.room('back').load().then(() => true, () => false), true)
  t.equal(back, true, 'the cut connection is back')
  cutter.cutReplyTo(dropRoomScript)
  const refused = await connect(a, '/link/refused')
  t.strictSame(await refused.linked('bob', 1), [rejected('not you')])
  const message = 'a room a failed link was admitted for could not be removed from the registry; listing the rooms removes it'
  await eventually(() => logs.lines.some(line => line.msg === message), () => JSON.stringify(logs.lines))
  t.match(logs.lines.find(line => line.msg === message), { room: 'refused' })
  t.equal(cutter.cuts, 2)
})
