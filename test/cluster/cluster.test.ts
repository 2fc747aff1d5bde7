import { Redis } from 'ioredis'
import t from 'tap'
import { agree, node } from '../helpers/cluster.js'
import { type Client, connect } from '../helpers/clients.js'
import { record } from '../helpers/events.js'
import { frames } from '../helpers/frames.js'
import { eventually } from '../helpers/waits.js'
import { ioredisMajors } from '../helpers/ioredis-majors.js'
import { RedisServer } from '../helpers/redis-server.js'

const redis = await RedisServer.start(t)
let namespaces = 0
const fresh = (): string => `cluster-${++namespaces}`

for (const { name, load } of ioredisMajors) {
  t.test(`three nodes are one user space: every client hears every change, in one order, and every view agrees (${name}, the application's client)`, async t => {
    const namespace = fresh()
    const { Redis: IoRedis } = await load() as { Redis: typeof Redis }
    const own = new IoRedis(redis.url)
    t.teardown(() => own.disconnect())
    const options = { cluster: { redis: own } }
    const nodes = [await node(t, redis, 'a', options, namespace), await node(t, redis, 'b', options, namespace), await node(t, redis, 'c', options, namespace)]
    const clients: Client[] = []
    const names = ['u0', 'u1', 'u2', 'u3', 'u4', 'u5']
    for (const [index, username] of names.entries()) {
      const client = await connect(nodes[index % 3])
      clients.push(client)
      const before = names.slice(0, index).flatMap(name => [frames.joined(name), frames.linked(name)])
      t.strictSame(await client.linked(username, 3 + 2 * index), [frames.accepted, ...before, frames.joined(username), frames.linked(username)],
      `${username} is told the cluster's user list on link`)
    }
    clients[1].send({ type: 'krmx/unlink' })
    t.strictSame(await clients[5].take(1), [frames.unlinked('u1')])
    clients[4].send({ type: 'krmx/leave' })
    t.strictSame(await clients[5].take(2), [frames.unlinked('u4'), frames.left('u4')])
    await nodes[2].linkServer.join('later')
    const expected = [
      { username: 'u0', isLinked: true },
      { username: 'u1', isLinked: false },
      { username: 'u2', isLinked: true },
      { username: 'u3', isLinked: true },
      { username: 'u5', isLinked: true },
      { username: 'later', isLinked: false }
    ]
    await agree(nodes, clients.filter((_, index) => index !== 1 && index !== 4), expected)
    t.strictSame(clients[0].frames().slice(13), [frames.unlinked('u1'), frames.unlinked('u4'), frames.left('u4'), frames.joined('later')],
      'the changes after the links, in the one order of the cluster')
    t.strictSame(clients[5].frames().slice(13), clients[0].frames().slice(13), 'a client on another node heard the same changes in the same order')
  })
}

t.test('links racing for one username on different nodes: exactly one is accepted, in 100 rounds, with a 50 ms authentication', async t => {
  const namespace = fresh()
  const slow = { setup: (app: Awaited<ReturnType<typeof node>>) => app.linkServer.on('authenticate', () => new Promise<void>(resolve => setTimeout(resolve, 50))) }
  const nodes = [await node(t, redis, 'a', slow, namespace), await node(t, redis, 'b', slow, namespace), await node(t, redis, 'c', slow, namespace)]
  const outcomes = new Map<string, number>()
  for (let batch = 0; batch < 10; batch++) {
    await Promise.all(Array.from({ length: 10 }, async (_, index) => {
      const username = `racer${batch * 10 + index}`
      const racers = await Promise.all(nodes.map(app => connect(app)))
      for (const racer of racers) {
        racer.requestLink(username)
      }
      const answers = await Promise.all(racers.map(async racer => (await racer.take(1))[0]))
      const accepted = answers.filter(answer => answer.type === 'krmx/accepted').length
      const refused = answers.filter(answer => JSON.stringify(answer) === JSON.stringify(frames.rejected(`user ${username} is already linked to a connection`))).length
      const outcome = `${accepted} accepted, ${refused} refused as already linked`
      outcomes.set(outcome, (outcomes.get(outcome) ?? 0) + 1)
      for (const racer of racers) {
        racer.ws.terminate()
      }
    }))
  }
  t.strictSame([...outcomes], [['1 accepted, 2 refused as already linked', 100]])
})

t.test('maxUsers and acceptNewUsers hold cluster-wide', async t => {
  const namespace = fresh()
  const a = await node(t, redis, 'a', { maxUsers: 2 }, namespace)
  const b = await node(t, redis, 'b', { maxUsers: 2 }, namespace)
  await (await connect(a)).linked('alice', 3)
  await (await connect(b)).linked('bob', 5)
  const carol = await connect(a)
  carol.requestLink('carol')
  t.strictSame(await carol.take(1), [frames.rejected('server is full')])
  await eventually(() => a.linkServer.getUsers().length === 2, () => JSON.stringify(a.linkServer.getUsers()))
  t.throws(() => a.linkServer.join('carol'), { code: 'FST_LINK_SERVER_FULL' })

  const closedNamespace = fresh()
  const c = await node(t, redis, 'c', { acceptNewUsers: false }, closedNamespace)
  const d = await node(t, redis, 'd', { acceptNewUsers: false }, closedNamespace)
  await c.linkServer.join('dave')
  const dave = await connect(d)
  t.strictSame(await dave.linked('dave', 3), [frames.accepted, frames.joined('dave'), frames.linked('dave')], 'a user joined on one node links on another')
  const eve = await connect(d)
  eve.requestLink('eve')
  t.strictSame(await eve.take(1), [frames.rejected('server is not accepting new users')])
})

t.test('the user API works from any node, settles when the change is applied there, and events fire once, where the change was made', async t => {
  const namespace = fresh()
  const a = await node(t, redis, 'a', {}, namespace)
  const b = await node(t, redis, 'b', {}, namespace)
  const c = await node(t, redis, 'c', {}, namespace)
  const events = { a: record(a), b: record(b), c: record(c) }
  const alice = await connect(a)
  await alice.linked('alice', 3)
  const bob = await connect(b)
  await bob.linked('bob', 5)
  await alice.take(2)
  await eventually(() => c.linkServer.isLinked('bob'), () => JSON.stringify(c.linkServer.getUsers()))

  c.linkServer.send('alice', { type: 'direct', payload: 'from c' })
  t.strictSame(await alice.take(1), [{ type: 'direct', payload: 'from c' }])
  c.linkServer.broadcast({ type: 'all', payload: 1 }, 'alice')
  t.strictSame(await bob.take(1), [{ type: 'all', payload: 1 }])
  t.strictSame(await alice.settle(), [], 'the skipped user, on another node, got nothing')

  t.throws(() => c.linkServer.kick('nobody'), { code: 'FST_LINK_UNKNOWN_USER' }, 'misuse the mirror sees still throws')
  t.throws(() => c.linkServer.unlink('nobody'), { code: 'FST_LINK_UNKNOWN_USER' })
  t.throws(() => c.linkServer.send('nobody', { type: 'x' }), { code: 'FST_LINK_UNKNOWN_USER' })

  await c.linkServer.unlink('alice')
  t.strictSame(c.linkServer.getUser('alice'), { username: 'alice', isLinked: false }, 'settled: applied on the node that asked')
  t.strictSame(await alice.take(1), [frames.unlinked('alice')])
  t.equal(alice.ws.readyState, alice.ws.OPEN, 'the connection stays open')
  alice.requestLink('alice')
  await alice.take(5)
  await b.linkServer.kick('alice')
  t.strictSame(b.linkServer.getUser('alice'), undefined)
  t.strictSame(await alice.take(2), [frames.unlinked('alice'), frames.left('alice')])

  const joins = await Promise.allSettled([a.linkServer.join('carol'), b.linkServer.join('carol')])
  t.strictSame(joins.map(join => join.status).sort(), ['fulfilled', 'rejected'], 'two nodes that both saw no carol: Redis decides')
  t.match(joins.find(join => join.status === 'rejected'), { reason: { code: 'FST_LINK_USER_EXISTS', statusCode: 409 } })
  await eventually(() => c.linkServer.getUser('carol') !== undefined, () => JSON.stringify(c.linkServer.getUsers()))

  const joinedOn = joins[0].status === 'fulfilled' ? 'a' : 'b'
  t.strictSame(events.a, [['join', 'alice'], ['link', 'alice'], ['link', 'alice'], ...(joinedOn === 'a' ? [['join', 'carol']] : [])],
    'a: the links of its connection')
  t.strictSame(events.b, [['join', 'bob'], ['link', 'bob'], ['unlink', 'alice'], ['leave', 'alice'], ...(joinedOn === 'b' ? [['join', 'carol']] : [])],
    'b: its connection, and the kick it made of a user linked to a')
  t.strictSame(events.c, [['unlink', 'alice']], 'c: the unlink it asked for')
})

t.test('a message from a user to its own node never waits on Redis', async t => {
  const namespace = fresh()
  const a = await node(t, redis, 'a', {}, namespace)
  const said: unknown[] = []
  a.linkServer.on('message', (username, message) => { said.push([username, message]) })
  const alice = await connect(a)
  await alice.linked('alice', 3)
  process.kill(redis.pid as number, 'SIGSTOP')
  try {
    alice.send({ type: 'chat/say', payload: 'while Redis is stopped' })
    await eventually(() => said.length === 1, () => JSON.stringify(said))
    a.linkServer.send('alice', { type: 'echo' })
    t.strictSame(await alice.take(1), [{ type: 'echo' }], 'and the node answers it')
  } finally {
    process.kill(redis.pid as number, 'SIGCONT')
  }
  t.strictSame(said, [['alice', { type: 'chat/say', payload: 'while Redis is stopped' }]])
})

t.test('a node that closes unlinks its users, who stay in the user space and link again on another node', async t => {
  const namespace = fresh()
  const a = await node(t, redis, 'a', {}, namespace)
  const { default: Fastify } = await import('fastify')
  const { default: fastifyLinkServer } = await import('../../index.js')
  const b = Fastify()
  await b.register(fastifyLinkServer, { pingIntervalMilliseconds: 0, cluster: { redis: redis.url, nodeId: 'b', namespace } })
  await b.listen({ port: 0, host: '127.0.0.1' })
  const eventsB = record(b)
  const alice = await connect(a)
  await alice.linked('alice', 3)
  const bob = await connect(b)
  await bob.linked('bob', 5)
  const carol = await connect(b)
  await carol.linked('carol', 7)
  await alice.take(4)
  await bob.take(2)
  const bobClosed = bob.closed()
  const carolClosed = carol.closed()
  await b.close()
  t.strictSame(bob.unread(), [frames.unlinked('bob')], 'each connection of the closing node hears only of its own unlink')
  t.strictSame(carol.unread(), [frames.unlinked('carol')])
  t.strictSame(await bobClosed, { code: 1001, reason: 'server closing' })
  t.strictSame(await carolClosed, { code: 1001, reason: 'server closing' })
  t.strictSame(await alice.take(2), [frames.unlinked('bob'), frames.unlinked('carol')], 'the others hear the unlinks')
  t.strictSame(a.linkServer.getUsers(), [{ username: 'alice', isLinked: true }, { username: 'bob', isLinked: false }, { username: 'carol', isLinked: false }])
  t.strictSame(eventsB, [['join', 'bob'], ['link', 'bob'], ['join', 'carol'], ['link', 'carol'], ['unlink', 'bob'], ['unlink', 'carol'], ['close']])
  const again = await connect(a)
  t.strictSame(await again.linked('bob', 6), [
    frames.accepted, frames.joined('alice'), frames.linked('alice'), frames.joined('bob'), frames.linked('bob'), frames.joined('carol')
  ], 'bob links again on a')
})

t.test('conflicts only Redis can see reject the promise with the coded error of the method', async t => {
  const namespace = fresh()
  const a = await node(t, redis, 'a', { maxUsers: 1 }, namespace)
  const b = await node(t, redis, 'b', { maxUsers: 1 }, namespace)
  const joins = await Promise.allSettled([a.linkServer.join('first'), b.linkServer.join('second')])
  t.strictSame(joins.map(join => join.status).sort(), ['fulfilled', 'rejected'])
  t.match(joins.find(join => join.status === 'rejected'), { reason: { code: 'FST_LINK_SERVER_FULL', statusCode: 503 } })
  const joined = joins[0].status === 'fulfilled' ? 'first' : 'second'
  await eventually(() => a.linkServer.getUser(joined) !== undefined && b.linkServer.getUser(joined) !== undefined, () => JSON.stringify(b.linkServer.getUsers()))
  const kicks = await Promise.allSettled([a.linkServer.kick(joined), b.linkServer.kick(joined)])
  t.strictSame(kicks.map(kick => kick.status).sort(), ['fulfilled', 'rejected'])
  t.match(kicks.find(kick => kick.status === 'rejected'), { reason: { code: 'FST_LINK_UNKNOWN_USER', statusCode: 404 } })
  const alice = await connect(a)
  await alice.linked('alice', 3)
  await eventually(() => b.linkServer.isLinked('alice'), () => JSON.stringify(b.linkServer.getUsers()))
  const unlinks = await Promise.allSettled([a.linkServer.unlink('alice'), b.linkServer.unlink('alice')])
  t.strictSame(unlinks.map(unlink => unlink.status).sort(), ['fulfilled', 'rejected'])
  t.match(unlinks.find(unlink => unlink.status === 'rejected'), { reason: { code: 'FST_LINK_USER_NOT_LINKED', statusCode: 409 } })
  t.strictSame(await alice.take(1), [frames.unlinked('alice')])
  t.strictSame(await alice.linked('alice', 3), [frames.accepted, frames.joined('alice'), frames.linked('alice')])
  await eventually(() => b.linkServer.isLinked('alice'), () => JSON.stringify(b.linkServer.getUsers()))
  b.linkServer.broadcast({ type: 'to/everyone' })
  t.strictSame(await alice.take(1), [{ type: 'to/everyone' }], 'a broadcast without a skip reaches the other node too')
})

t.test('a connection that closes while its link is being committed is unlinked once the link is applied', async t => {
  const namespace = fresh()
  let release: (() => void) | undefined
  const a = await node(t, redis, 'a', {
    setup: app => app.linkServer.on('authenticate', () => new Promise<void>(resolve => { release = resolve }))
  }, namespace)
  const b = await node(t, redis, 'b', {}, namespace)
  const events = record(a)
  const watcher = await connect(b)
  await watcher.linked('watcher', 3)
  const leaving = await connect(a)
  leaving.requestLink('orphan')
  await eventually(() => release !== undefined, () => 'authenticate was not called')
  const admin = new Redis(redis.url)
  t.teardown(() => admin.disconnect())
  await admin.call('CLIENT', 'PAUSE', '400', 'WRITE') // the link script waits in Redis
  ;(release as () => void)()
  leaving.ws.terminate()
  await eventually(() => a.linkServer.getStats().connections === 0, () => JSON.stringify(a.linkServer.getStats()))
  t.strictSame(await watcher.take(3, 5_000), [frames.joined('orphan'), frames.linked('orphan'), frames.unlinked('orphan')])
  await eventually(() => a.linkServer.getUser('orphan')?.isLinked === false, () => JSON.stringify(a.linkServer.getUsers()))
  t.strictSame(events, [['join', 'orphan'], ['link', 'orphan'], ['unlink', 'orphan']])
})
