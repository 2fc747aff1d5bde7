import Fastify from 'fastify'
import { Redis } from 'ioredis'
import t from 'tap'
import fastifyLinkServer from '../../index.js'
import { connectTimeoutFor, createRedisBackend, keyPrefixOf } from '../../lib/backend/redis.js'
import { claimScript, linkScript } from '../../lib/backend/redis/scripts.js'
import { agree, broadcastUntilHeard, killConnection, node } from '../helpers/cluster.js'
import { build } from '../helpers/app.js'
import { connect } from '../helpers/clients.js'
import { LogRecorder, record } from '../helpers/events.js'
import { frames } from '../helpers/frames.js'
import { scrape } from '../helpers/metrics.js'
import { eventually, unhandledRejections } from '../helpers/waits.js'
import { freePort, RedisServer } from '../helpers/redis-server.js'
import { ReplyCutter } from '../helpers/reply-cutter.js'

const redis = await RedisServer.start(t)

t.test('an unreachable Redis fails ready() with FST_LINK_CLUSTER_UNAVAILABLE within 15 s, not a hang or a raw ECONNREFUSED', async t => {
  const app = Fastify({ pluginTimeout: 0 }) // no onReady timeout of Fastify's: the plugin's own bounds the wait
  await app.register(fastifyLinkServer, { cluster: { redis: `redis://127.0.0.1:${await freePort()}` } })
  const started = Date.now()
  await t.rejects(async () => app.ready(), {
    code: 'FST_LINK_CLUSTER_UNAVAILABLE',
    statusCode: 503,
    message: 'Cannot start the link server: the cluster is unavailable (Redis did not answer within 15000 ms)'
  })
  const took = Date.now() - started
  t.ok(took >= 15_000 && took < 16_000, `failed after ${took} ms`)
  await app.close()
  t.strictSame([connectTimeoutFor(10_000), connectTimeoutFor(0), connectTimeoutFor(60_000), connectTimeoutFor(500)], [9_000, 15_000, 15_000, 100],
    "one second within Fastify's pluginTimeout (which bounds onReady; default 10 s), at most 15 s")
})

t.test('a Redis that refuses the credentials fails ready() at once, saying so and never saying the password', async t => {
  const secured = await RedisServer.start(t, ['--requirepass', 'the-right-one'])
  const cases: Array<[string, string]> = [
    [`redis://127.0.0.1:${secured.port}`, 'NOAUTH'],
    [`redis://:hunter2@127.0.0.1:${secured.port}`, 'WRONGPASS']
  ]
  for (const [url, code] of cases) {
    const app = Fastify()
    await app.register(fastifyLinkServer, { cluster: { redis: url } })
    const started = Date.now()
    const error = await app.ready().then(() => undefined, (err: unknown) => err as { code: string, message: string })
    t.strictSame({ code: error?.code, message: error?.message }, {
      code: 'FST_LINK_CLUSTER_UNAVAILABLE',
      message: `Cannot start the link server: the cluster is unavailable (Redis refused the credentials (${code}): check the password, and the user, of the Redis URL or client)`
    })
    t.ok(Date.now() - started < 3_000, `at once, not after the connect timeout (${Date.now() - started} ms)`)
    await app.close()
  }
  const app = Fastify()
  await app.register(fastifyLinkServer, { cluster: { redis: `redis://:the-right-one@127.0.0.1:${secured.port}` } })
  await app.ready()
  t.equal(app.linkServer.getStatus(), 'listening', 'the right password starts')
  await app.close()
})

t.test('without ioredis installed, cluster mode fails with a coded error that names it', async t => {
  const options = { redis: redis.url, namespace: 'x', nodeId: 'a', nodeTimeoutMilliseconds: 10_000, rooms: false }
  await t.rejects(createRedisBackend(options, { authTimeoutMilliseconds: 1_000, connectTimeoutMilliseconds: 1_000, sessions: { windowMilliseconds: 0, replay: undefined, takeover: false } }, Fastify().log, async () => { throw new Error("Cannot find package 'ioredis'") }), {
    code: 'FST_LINK_CLUSTER_UNAVAILABLE',
    message: "Cannot use cluster mode: the cluster is unavailable (the ioredis package could not be loaded (npm install ioredis): Cannot find package 'ioredis')"
  })
})

t.test("an application's own ioredis client is duplicated, never closed", async t => {
  const client = new Redis(redis.url)
  t.teardown(() => client.disconnect())
  const app = Fastify()
  await app.register(fastifyLinkServer, { pingIntervalMilliseconds: 0, cluster: { redis: client, namespace: 'own-client' } })
  await app.listen({ port: 0, host: '127.0.0.1' })
  const alice = await connect(app)
  t.strictSame(await alice.linked('alice', 3), [frames.accepted, frames.joined('alice'), frames.linked('alice')])
  await app.close()
  t.equal(client.status, 'ready')
  t.equal(await client.ping(), 'PONG')
  t.strictSame(await client.zrange('{own-client}:users', 0, -1), ['alice'], 'the user stays in the user space (unlinked) after its node closed')
  t.equal(await client.hget('{own-client}:links', 'alice'), null)
})

t.test("an application's client with a keyPrefix: every key and channel of the plugin is under the prefix, and its instances share one user space", async t => {
  const prefixed = new Redis(redis.url, { keyPrefix: 'myapp:' })
  t.teardown(() => prefixed.disconnect())
  const cluster = { redis: prefixed, namespace: 'prefixed' }
  const a = await build(t, { listen: true, cluster: { ...cluster, nodeId: 'a' } })
  const b = await build(t, { listen: true, cluster: { ...cluster, nodeId: 'b' } })
  const alice = await connect(a)
  t.strictSame(await alice.linked('alice', 3), [frames.accepted, frames.joined('alice'), frames.linked('alice')])
  const bob = await connect(b)
  t.strictSame(await bob.linked('bob', 5), [frames.accepted, frames.joined('alice'), frames.linked('alice'), frames.joined('bob'), frames.linked('bob')])
  t.strictSame(await alice.take(2), [frames.joined('bob'), frames.linked('bob')])
  b.linkServer.broadcast({ type: 'hello' })
  t.strictSame(await alice.take(1), [{ type: 'hello' }], 'the channels carry the prefix on both instances')
  const admin = new Redis(redis.url)
  t.teardown(() => admin.disconnect())
  const keys = (await admin.keys('*prefixed*')).sort()
  t.strictSame(keys.filter(key => !key.startsWith('myapp:{prefixed}:')), [], `every key is under the prefix: ${keys.join(' ')}`)
  t.strictSame(await admin.zrange('myapp:{prefixed}:users', 0, -1), ['alice', 'bob'])
  t.strictSame(await prefixed.zrange('{prefixed}:users', 0, -1), ['alice', 'bob'], 'which the application reads through its own client')
  t.strictSame([keyPrefixOf(redis.url), keyPrefixOf(admin), keyPrefixOf(prefixed), keyPrefixOf({ options: { keyPrefix: Buffer.from('buffer:') } } as never),
    keyPrefixOf({ options: { keyPrefix: 7 } } as never)], ['', '', 'myapp:', 'buffer:', ''])
})

t.test('what is read from Redis is input: malformed publications and log records are refused, counted and logged, and the nodes keep serving', async t => {
  const logs = new LogRecorder()
  const a = await node(t, redis, 'a', { metrics: true, fastify: { logger: { level: 'warn', stream: logs.stream } } }, 'inputs')
  const b = await node(t, redis, 'b', {}, 'inputs')
  const alice = await connect(a)
  await alice.linked('alice', 3)
  const bob = await connect(b)
  await bob.linked('bob', 5)
  await alice.take(2)
  const admin = new Redis(redis.url)
  t.teardown(() => admin.disconnect())
  const publications: Array<[string, string]> = [
    ['{inputs}:broadcast', 'x'], // what redis-cli would send
    ['{inputs}:to:a', 'garbage'],
    ['{inputs}:broadcast', 'b\n\n{"type":"hello"}'], // a node before the wire format had a version
    ['{inputs}:broadcast', 'v0\nb\n\n{"type":"hello"}'], // a node of another version
    ['{inputs}:broadcast', 'v1\nb\n\n{"type":"krmx/joined","payload":{"username":"evil"}}'],
    ['{inputs}:broadcast', 'v1\nb\n5\n{"type":"hello"}'],
    ['{inputs}:broadcast', 'v1\nb\n\nnot json'],
    ['{inputs}:to:a', 'v1\n"alice"\n[1]'],
    ['{inputs}:to:a', 'v1\n[1,2]\n{"type":"hello"}'],
    ['{inputs}:to:a', 'v1\n["alice",-1]\n{"type":"hello"}'],
    ['{inputs}:to:a', 'v1\n{\n{"type":"hello"}'],
    ['{inputs}:log', 'garbage'], // the channel of the log: '<seq>\n' and the record's fields as a JSON array of strings
    ['{inputs}:log', '5\nnot json'],
    ['{inputs}:log', '0\n["op","join","u","x","o","x"]'],
    ['{inputs}:log', '7\n["op",1]']
  ]
  for (const [channel, message] of publications) {
    await admin.publish(channel, message)
  }
  b.linkServer.broadcast({ type: 'after' })
  t.strictSame(await alice.take(1), [{ type: 'after' }], 'none of them reached a client, and the next broadcast does')
  const records = [['op', 'bogus', 'u', 'x', 'o', 'x'], ['op', 'unlink', 'u', 'ghost', 'o', 'x', 'g', '5', 'c', 'client'],
    ['op', 'join', 'u', 'alice', 'o', 'x'], ['op', 'leave', 'u', 'ghost', 'o', 'x', 'c', 'kick'], ['op', 'link', 'u', 'x', 'o', 'x', 'g', 'NaN'],
    ['op', 'unlink', 'u', 'bob', 'o', 'x', 'g', '5', 'c', 'nonsense'], ['op', 'leave', 'u', 'bob', 'o', 'x', 'c', 'nonsense'], ['u', 'odd']]
  for (const fields of records) {
    const seq = await admin.incr('{inputs}:seq')
    await admin.xadd('{inputs}:log', `${seq}-0`, ...fields)
  }
  await a.linkServer.join('carol')
  t.strictSame(await alice.take(1), [frames.joined('carol')], 'no record of them reached a client, and the next change does')
  t.strictSame(await bob.take(2), [{ type: 'after' }, frames.joined('carol')], 'on the other node too')
  t.strictSame([...await alice.settle(), ...await bob.settle()], [], 'and nothing else')
  t.strictSame([a.linkServer.getUsers(), b.linkServer.getUsers()], [[
    { username: 'alice', isLinked: true }, { username: 'bob', isLinked: true }, { username: 'carol', isLinked: false }
  ], [{ username: 'alice', isLinked: true }, { username: 'bob', isLinked: true }, { username: 'carol', isLinked: false }]])
  const samples = await scrape(a)
  t.strictSame([samples['link_server_cluster_refused_inputs_total{input="publication"}'], samples['link_server_cluster_refused_inputs_total{input="record"}']],
    [publications.length, records.length])
  t.strictSame(logs.lines.map(({ msg, input, refused }) => ({ msg, input, refused })), [
    { msg: 'Redis held a publication this node refused: it is not a publication of fastify-link-server (a foreign publisher, or a version before the wire format had one)', input: 'publication', refused: 1 },
    { msg: 'Redis held a log record this node refused: log record 3-0 is not a change of fastify-link-server', input: 'record', refused: 1 }
  ], 'the first refusal of each kind is logged; the others within a second are counted')
})

t.test('a link committed for a node whose reply was lost is unlinked there: no user stays linked to no connection', async t => {
  const logs = new LogRecorder()
  const a = await node(t, redis, 'a', { fastify: { logger: { level: 'warn', stream: logs.stream } } }, 'orphan')
  const b = await node(t, redis, 'b', {}, 'orphan')
  const eventsA = record(a)
  const bob = await connect(b)
  await bob.linked('bob', 3)
  // What node a's link of ghost did in Redis, when the reply of its link script was lost on the way back: the claim
  // and the link committed, with a token a no longer waits for (it refused the connection as unavailable).
  const admin = new Redis(redis.url)
  t.teardown(() => admin.disconnect())
  const epoch = await admin.get('{orphan}:epoch') as string
  const run = async (lua: string, ...args: Array<string | number>) => admin.eval(lua, 1, '{orphan}:seq', '{orphan}', epoch, ...args)
  t.strictSame(await run(claimScript, 'a', 'ghost', 'a:lost', 1, 100, 15_000, 0), ['ok', 1, 0])
  t.strictSame(await run(linkScript, 'a', 'ghost', 'a:lost', 1, 100, 0, '', 0, 0, ''), ['ok', 2, '1'])
  t.strictSame(await bob.take(3), [frames.joined('ghost'), frames.linked('ghost'), frames.unlinked('ghost')], 'linked, then unlinked by a')
  await eventually(() => !a.linkServer.isLinked('ghost') && !b.linkServer.isLinked('ghost'), () => JSON.stringify([a.linkServer.getUsers(), b.linkServer.getUsers()]))
  t.strictSame(await admin.hgetall('{orphan}:links'), { bob: 'b 1' }, 'and in Redis')
  t.strictSame(eventsA, [['join', 'ghost'], ['link', 'ghost'], ['unlink', 'ghost']], 'node a made these changes, and emitted them once')
  t.strictSame(logs.lines.map(line => [line.msg, line.username]), [
    ['a link whose commit went unanswered was committed after all; its connection is gone, so it is unlinked', 'ghost']
  ])
  const ghost = await connect(a)
  t.strictSame(await ghost.linked('ghost', 5), [frames.accepted, frames.joined('bob'), frames.linked('bob'), frames.joined('ghost'), frames.linked('ghost')],
    'the user links again')
})

t.test('a link whose reply is cut after it committed is read back and accepted, not refused and left as a ghost', async t => {
  const cutter = await ReplyCutter.start(t, redis.port)
  const admin = new Redis(redis.url)
  t.teardown(() => admin.disconnect())
  let blackoutNext = 0
  const a = await node(t, redis, 'a', {
    cluster: { redis: cutter.url },
    setup: app => app.linkServer.on('authenticate', () => { // after the claim, before the link
      if (blackoutNext > 0) {
        cutter.blackout(blackoutNext)
      } else {
        cutter.cutReplyTo(linkScript)
      }
    })
  }, 'cut')
  const b = await node(t, redis, 'b', {}, 'cut')
  const eventsA = record(a)
  const watcher = await connect(b)
  await watcher.linked('watcher', 3)
  const lucky = await connect(a)
  t.strictSame(await lucky.linked('lucky', 5), [frames.accepted, frames.joined('watcher'), frames.linked('watcher'), frames.joined('lucky'), frames.linked('lucky')],
    'the link committed, so it is accepted')
  t.equal(cutter.cuts, 1, 'its reply was cut')
  t.strictSame(await watcher.take(2), [frames.joined('lucky'), frames.linked('lucky')])
  t.strictSame(eventsA, [['join', 'lucky'], ['link', 'lucky']])
  lucky.send({ type: 'krmx/unlink' })
  t.strictSame(await watcher.take(1), [frames.unlinked('lucky')], 'and it is an ordinary link: it unlinks')
  t.strictSame([...await watcher.settle(), ...await lucky.take(1)], [frames.unlinked('lucky')])

  cutter.cutReplyTo(claimScript)
  const unlucky = await connect(a)
  t.strictSame(await unlucky.linked('unlucky', 1), [frames.rejected('cluster unavailable')], 'a claim whose answer was cut is refused')
  t.equal(cutter.cuts, 2)
  // A client tries again every 100 ms while the cut connection comes back and the claim is freed: it links within 2 s,
  // not after the claim expired (15 s).
  const answers: string[] = []
  for (let attempt = 0; attempt < 20 && answers.at(-1) !== 'krmx/accepted'; attempt++) {
    await new Promise(resolve => setTimeout(resolve, 100))
    unlucky.requestLink('unlucky')
    const [answer] = await unlucky.take(1)
    answers.push(answer.type === 'krmx/rejected' ? (answer.payload as { reason: string }).reason : answer.type)
  }
  t.strictSame(answers.filter(answer => answer !== 'cluster unavailable' && answer !== 'user unlucky is already linked to a connection'), ['krmx/accepted'],
    `and freed: a later try takes it, long before the claim would expire (${answers.join(', ')})`)
  t.equal(answers.at(-1), 'krmx/accepted')

  // The node is cut off Redis as it sends the link, for longer than it tries to read the outcome back (2 s): refused.
  blackoutNext = 2_500
  const cutOff = await connect(a)
  t.strictSame(await cutOff.linked('cutoff', 1), [frames.rejected('cluster unavailable')], 'an outcome that cannot be read back is a refusal')
})

t.test('a resubscription whose reply is cut after a reconnection is made again: no unhandled rejection, and the node hears the cluster', async t => {
  const rejections = unhandledRejections(t)
  const cutter = await ReplyCutter.start(t, redis.port)
  const a = await node(t, redis, 'a', { cluster: { redis: cutter.url } }, 'resubscribe')
  const b = await node(t, redis, 'b', {}, 'resubscribe')
  const alice = await connect(a)
  await alice.linked('alice', 3)
  cutter.cutReplyToCommand('\r\nsubscribe\r\n') // the command, not the connection name
  cutter.blackout(300) // every connection of node a is cut; the subscriber's SUBSCRIBE after it reconnects loses its reply
  await eventually(() => cutter.cuts === 1, () => `${cutter.cuts} cuts`)
  const first = await broadcastUntilHeard(t, b, alice)
  t.equal(first.type, 'ping', 'node a is subscribed again: a broadcast of node b reaches its user')
  t.strictSame(rejections, [], 'the failed resubscription was handled')
})

t.test('a resubscription Redis refuses while connected (an ACL without the channels) is tried again until it is allowed', async t => {
  const rejections = unhandledRejections(t)
  const own = await RedisServer.start(t)
  const admin = new Redis(own.url)
  t.teardown(() => admin.disconnect())
  const logs = new LogRecorder()
  const a = await node(t, own, 'a', { fastify: { logger: { level: 'warn', stream: logs.stream } } }, 'acl')
  const b = await node(t, own, 'b', {}, 'acl')
  const alice = await connect(a)
  await alice.linked('alice', 3)
  // Redis 7 disconnects the subscribers of channels a user may no longer use: they connect again, and are refused.
  await admin.call('ACL', 'SETUSER', 'default', 'resetchannels')
  await logs.count(2)
  await admin.call('ACL', 'SETUSER', 'default', 'allchannels')
  const first = await broadcastUntilHeard(t, b, alice)
  t.equal(first.type, 'ping', 'node a is subscribed again')
  t.strictSame([...new Set(logs.lines.map(line => [line.msg, (line.err as { message: string }).message.split(' ')[0]].join(': ')))],
    ['could not subscribe again to the channels of the cluster; trying again: NOPERM'], 'each refusal was logged, and tried again')
  t.strictSame(rejections, [])
})

t.test('a read of the log whose reply is cut is made again after the next heartbeat: what a node missed still reaches it', async t => {
  const cutter = await ReplyCutter.start(t, redis.port)
  const a = await node(t, redis, 'a', { cluster: { redis: cutter.url } }, 'reread')
  const b = await node(t, redis, 'b', {}, 'reread')
  const alice = await connect(a)
  await alice.linked('alice', 3)
  const admin = new Redis(redis.url)
  t.teardown(() => admin.disconnect())
  cutter.cutReplyToCommand('\r\nxrange\r\n') // the read of what node a missed, once its subscription is back
  await killConnection(admin, 'a:reader')
  await b.linkServer.join('bob') // published while node a's subscription is cut (it comes back after 200 ms)
  t.strictSame(await alice.take(1), [frames.joined('bob')], 'node a read it after all')
  t.equal(cutter.cuts, 1, 'its first read lost its reply')
  t.strictSame(a.linkServer.getUsers(), [{ username: 'alice', isLinked: true }, { username: 'bob', isLinked: false }])
})

t.test('an entry appended to the log with an automatic id is removed: a node that reads the log past it heals it, and so does the next change', async t => {
  const a = await node(t, redis, 'a', { metrics: true }, 'heal')
  const b = await node(t, redis, 'b', { metrics: true }, 'heal')
  const alice = await connect(a)
  await alice.linked('alice', 3)
  const admin = new Redis(redis.url)
  t.teardown(() => admin.disconnect())
  const foreign = await admin.xadd('{heal}:log', '*', 'op', 'join', 'u', 'intruder', 'o', 'x') as string
  // Nothing published it: node a reads the log when its subscription to the log's channel is cut and made again.
  await killConnection(admin, 'a:reader')
  let entries: unknown[] = ['not read yet']
  for (let tries = 0; tries < 100 && entries.length > 0; tries++) {
    entries = await admin.xrange('{heal}:log', foreign, foreign)
    await new Promise(resolve => setTimeout(resolve, 20))
  }
  t.strictSame(entries, [], 'node a removed it')
  const refused = async (app: typeof a) => (await scrape(app))['link_server_cluster_refused_inputs_total{input="record"}']
  t.strictSame([await refused(a), await refused(b)], [1, 0], 'counted once, by the node that removed it')
  const bob = await connect(b)
  t.strictSame(await bob.linked('bob', 5), [frames.accepted, frames.joined('alice'), frames.linked('alice'), frames.joined('bob'), frames.linked('bob')])

  await admin.xadd('{heal}:log', '*', 'op', 'join', 'u', 'intruder', 'o', 'x')
  await a.linkServer.join('carol') // its script appends past the foreign entry: it heals the log first
  t.strictSame(await alice.take(3), [frames.joined('bob'), frames.linked('bob'), frames.joined('carol')])
  t.strictSame(await bob.take(1), [frames.joined('carol')])
  const seq = Number(await admin.get('{heal}:seq'))
  t.strictSame((await admin.xrevrange('{heal}:log', '+', '-', 'COUNT', 1)).map(([id]) => id), [`${seq}-0`], 'the log ends at the sequence number')
  const users = [{ username: 'alice', isLinked: true }, { username: 'bob', isLinked: true }, { username: 'carol', isLinked: false }]
  await eventually(() => JSON.stringify([a.linkServer.getUsers(), b.linkServer.getUsers()]) === JSON.stringify([users, users]),
    () => JSON.stringify([a.linkServer.getUsers(), b.linkServer.getUsers()]))
})

t.test('two instances given one nodeId: the one that started last wins, the other learns it from its heartbeat and takes no more links', async t => {
  const logs = new LogRecorder()
  const first = await node(t, redis, 'twin', { fastify: { logger: { level: 'error', stream: logs.stream } } }, 'twins')
  const alice = await connect(first)
  await alice.linked('alice', 3)
  const second = await node(t, redis, 'twin', {}, 'twins')
  t.strictSame(await alice.take(1), [frames.unlinked('alice')], 'the second life ended the links the first one had')
  const [line] = await logs.count(1)
  t.strictSame([line.msg, line.nodeId], [
    "another instance started as node twin, which ended this one's links; this instance takes no more links: give each instance a nodeId of its own", 'twin'])
  alice.requestLink('alice')
  t.strictSame(await alice.take(1), [frames.rejected('cluster unavailable')], 'the first takes no more links')
  const bob = await connect(second)
  t.strictSame(await bob.linked('bob', 4), [frames.accepted, frames.joined('alice'), frames.joined('bob'), frames.linked('bob')], 'the second does')
})

t.test('a link whose script is held past its timeout (CLIENT PAUSE WRITE) is read back when it runs, and accepted', async t => {
  const admin = new Redis(redis.url)
  t.teardown(() => admin.disconnect())
  const a = await node(t, redis, 'a', {
    setup: app => app.linkServer.on('authenticate', async () => { await admin.call('CLIENT', 'PAUSE', '2500', 'WRITE') })
  }, 'paused')
  const events = record(a)
  const paused = await connect(a)
  t.strictSame(await paused.linked('paused', 3), [frames.accepted, frames.joined('paused'), frames.linked('paused')],
    'no answer within the command timeout; the read-back waits behind it on its connection, and finds it committed')
  t.strictSame(events, [['join', 'paused'], ['link', 'paused']])
  t.equal(await admin.hget('{paused}:links', 'paused'), `a ${await admin.get('{paused}:seq')}`)
})

t.test('a link script that fails in Redis (an error, not a refusal) is read back: not committed, so refused', async t => {
  const admin = new Redis(redis.url)
  t.teardown(() => admin.disconnect())
  const a = await node(t, redis, 'a', {}, 'failing')
  const seq = await admin.get('{failing}:seq') as string
  // A counter that is not an integer: the script fails at its INCR, before it records anything, while the node can
  // still read Redis' sequence number (below the one it applied) and finds no record of the link.
  await admin.set('{failing}:seq', String(Number(seq) - 0.5))
  const failed = await connect(a)
  t.strictSame(await failed.linked('failed', 1), [frames.rejected('cluster unavailable')])
  t.strictSame([await admin.hget('{failing}:links', 'failed'), await admin.zscore('{failing}:users', 'failed')], [null, null], 'nothing of it was kept')
  await admin.set('{failing}:seq', seq)
  failed.requestLink('failed')
  t.strictSame(await failed.take(3), [frames.accepted, frames.joined('failed'), frames.linked('failed')], 'and links once the counter is whole again')
})

t.test('Redis stopped for 5 s and restarted empty: no crash, links refused meanwhile, local messages flow, and the views agree again within 5 s', async t => {
  const rejections = unhandledRejections(t)
  const a = await node(t, redis, 'a', {}, 'outage')
  const b = await node(t, redis, 'b', {}, 'outage')
  const c = await node(t, redis, 'c', {}, 'outage')
  let received = 0
  a.linkServer.on('message', () => { received++ })
  const a1 = await connect(a)
  await a1.linked('a1', 3)
  const b1 = await connect(b)
  await b1.linked('b1', 5)
  const b2 = await connect(b)
  await b2.linked('b2', 7)
  const c1 = await connect(c)
  await c1.linked('c1', 9)
  await b.linkServer.join('idle')
  const expected = ['a1', 'b1', 'b2', 'c1'].map(username => ({ username, isLinked: true })).concat([{ username: 'idle', isLinked: false }])
  await agree([a, b, c], [a1, b1], expected)
  const load = setInterval(() => a1.send({ type: 'load' }), 20) // 50 a second, within the default rate limit
  t.teardown(() => clearInterval(load))

  await redis.stop()
  const during = await connect(b)
  during.requestLink('newcomer')
  t.strictSame(await during.take(1), [frames.rejected('cluster unavailable')])
  await t.rejects(a.linkServer.kick('b1'), { code: 'FST_LINK_CLUSTER_UNAVAILABLE', statusCode: 503 })
  a1.unread()
  a.linkServer.broadcast({ type: 'lost' }) // its own users get it; the other nodes' are out of reach
  t.strictSame(await a1.take(1), [{ type: 'lost' }])
  b2.ws.close() // its unlink is owed until Redis is back
  await c.close() // a node that closes meanwhile cannot unlink its users; they are lost with the data
  const before = received
  await eventually(() => received > before + 50, () => `${received - before} messages during the outage`)
  await new Promise(resolve => setTimeout(resolve, 5_000))
  await redis.restart()
  const restartedAt = Date.now()

  // The linked users come back with their nodes; the idle user, linked nowhere, was lost with Redis' data, and so
  // were b2 (its connection closed meanwhile) and c1 (its node closed).
  await agree([a, b], [a1, b1], [{ username: 'a1', isLinked: true }, { username: 'b1', isLinked: true }], 5_000)
  t.ok(Date.now() - restartedAt <= 5_000, `agreed ${Date.now() - restartedAt} ms after Redis returned`)
  clearInterval(load)
  during.requestLink('newcomer')
  t.strictSame(await during.take(7), [
    frames.accepted, frames.joined('a1'), frames.linked('a1'), frames.joined('b1'), frames.linked('b1'), frames.joined('newcomer'), frames.linked('newcomer')
  ], 'links are taken again, into the recovered user space')
  await agree([a, b], [a1, b1, during], [{ username: 'a1', isLinked: true }, { username: 'b1', isLinked: true }, { username: 'newcomer', isLinked: true }])
  t.strictSame(rejections, [])
})

t.test('Redis flushed under the nodes: they notice and register their users again; nothing crashes', async t => {
  const rejections = unhandledRejections(t)
  const a = await node(t, redis, 'a', {}, 'flushed')
  const b = await node(t, redis, 'b', {}, 'flushed')
  const a1 = await connect(a)
  await a1.linked('a1', 3)
  const b1 = await connect(b)
  await b1.linked('b1', 5)
  const expected = [{ username: 'a1', isLinked: true }, { username: 'b1', isLinked: true }]
  await agree([a, b], [a1, b1], expected)
  a1.unread()
  const admin = new Redis(redis.url)
  t.teardown(() => admin.disconnect())
  await admin.flushall()
  let users: string[] = []
  const deadline = Date.now() + 5_000
  while (users.length < 2 && Date.now() < deadline) {
    await new Promise(resolve => setTimeout(resolve, 50))
    users = await admin.zrange('{flushed}:users', 0, -1)
  }
  t.strictSame(users, ['a1', 'b1'], 'registered again, in their order')
  await agree([a, b], [a1, b1], expected)
  // Another epoch appears (a failover to a replica someone else set up): every script refuses until the
  // heartbeat moves the node over, and a reload of that other user space is not applied meanwhile.
  await admin.multi().set('{flushed}:epoch', 'foreign').set('{flushed}:seq', 999_999).xadd('{flushed}:log', '999999-0', 'op', 'restore').exec()
  await t.rejects(a.linkServer.join('refused'), { code: 'FST_LINK_CLUSTER_UNAVAILABLE', message: 'Cannot join a user: the cluster is unavailable (Redis lost the user space)' })
  await eventually(() => a.linkServer.getUser('refused') === undefined, () => '')
  let joined = false
  const until = Date.now() + 5_000
  while (!joined && Date.now() < until) {
    joined = await a.linkServer.join('accepted').then(() => true, () => false)
  }
  t.ok(joined, 'the node moved to the other epoch and takes changes again')
  await agree([a, b], [a1, b1], [...expected, { username: 'accepted', isLinked: false }])
  const later = await connect(b)
  t.strictSame(await later.linked('later', 8), [
    frames.accepted, frames.joined('a1'), frames.linked('a1'), frames.joined('b1'), frames.linked('b1'), frames.joined('accepted'), frames.joined('later'), frames.linked('later')
  ])
  t.strictSame(await a1.take(3), [frames.joined('accepted'), frames.joined('later'), frames.linked('later')])
  t.strictSame(rejections, [])
})

t.test('a node that missed records (it fell behind the trimmed log) reloads the user space and tells its clients the differences, without events', async t => {
  const a = await node(t, redis, 'a', {}, 'gap')
  const events = record(a)
  const watcher = await connect(a)
  await watcher.linked('watcher', 3)
  const y = await connect(a)
  await y.linked('yves', 5)
  await a.linkServer.join('xena')
  await a.linkServer.join('zoe')
  await watcher.take(4)
  await y.take(2)
  events.length = 0
  // What the missed records did, written into Redis directly: yves was unlinked, xena linked elsewhere, zoe left.
  const admin = new Redis(redis.url)
  t.teardown(() => admin.disconnect())
  const seq = Number(await admin.get('{gap}:seq'))
  await admin.multi()
    .hdel('{gap}:links', 'yves').srem('{gap}:node:a', 'yves')
    .hset('{gap}:links', 'xena', `elsewhere ${seq + 1}`)
    .zrem('{gap}:users', 'zoe')
    .set('{gap}:seq', seq + 5).xadd('{gap}:log', `${seq + 5}-0`, 'op', 'join', 'u', 'walt', 'o', 'elsewhere')
    .publish('{gap}:log', `${seq + 5}\n["op","join","u","walt","o","elsewhere"]`) // as the scripts publish every record
    .exec()
  t.strictSame(await watcher.take(3), [frames.left('zoe'), frames.unlinked('yves'), frames.linked('xena')])
  t.strictSame(await y.take(2), [frames.left('zoe'), frames.unlinked('yves')], 'yves hears of its own unlink, and may link again')
  t.strictSame(a.linkServer.getUsers(), [{ username: 'watcher', isLinked: true }, { username: 'yves', isLinked: false }, { username: 'xena', isLinked: true }])
  t.strictSame(events, [], 'the changes were made elsewhere: no events here')
})

t.test('a link whose log record a reload covered (a gap before it) is applied as its record would have been: accepted, told who is there, its events emitted, a takeover closing the other connection', async t => {
  for (const gap of [false, true]) {
    const namespace = gap ? 'covered' : 'read'
    const a = await node(t, redis, 'a', { linkConflict: 'takeover' }, namespace)
    const admin = new Redis(redis.url)
    t.teardown(() => admin.disconnect())
    // A gap: sequence numbers taken with no record in the log, as records trimmed away would leave; the
    // node reads the link's record after it, reloads the user space, and finds the link in the snapshot.
    const skip = async (): Promise<void> => { if (gap) await admin.incrby(`{${namespace}}:seq`, 5) }
    const watcher = await connect(a)
    await watcher.linked('watcher', 3)
    const events = record(a)
    await skip()
    const first = await connect(a)
    t.strictSame(await first.linked('newcomer', 5), [
      frames.accepted, frames.joined('watcher'), frames.linked('watcher'), frames.joined('newcomer'), frames.linked('newcomer')
    ], `gap ${String(gap)}: the link is accepted and told who is there`)
    t.strictSame(await watcher.take(2), [frames.joined('newcomer'), frames.linked('newcomer')])
    await skip()
    const second = await connect(a)
    t.strictSame(await second.linked('newcomer', 5), [
      frames.accepted, frames.joined('watcher'), frames.linked('watcher'), frames.joined('newcomer'), frames.linked('newcomer')
    ], `gap ${String(gap)}: the takeover is accepted`)
    t.strictSame(await first.closed(), { code: 4001, reason: 'linked from another connection' })
    t.strictSame(first.unread(), [frames.unlinked('newcomer')])
    t.strictSame(await watcher.take(2), [frames.unlinked('newcomer'), frames.linked('newcomer')])
    t.strictSame(events, [['join', 'newcomer'], ['link', 'newcomer'], ['unlink', 'newcomer'], ['link', 'newcomer']],
      `gap ${String(gap)}: the events of the link, the takeover's unlink and the link again`)
    t.strictSame(a.linkServer.getUsers(), [{ username: 'watcher', isLinked: true }, { username: 'newcomer', isLinked: true }])
  }
})
