import { Redis } from 'ioredis'
import t, { type Test } from 'tap'
import { killConnection, linkTo, node, nodeTimeoutMilliseconds, spawnNodeProcess } from '../helpers/cluster.js'
import { connect, RecordingClient } from '../helpers/clients.js'
import { LogRecorder, next, record } from '../helpers/events.js'
import { frames } from '../helpers/frames.js'
import { eventually } from '../helpers/waits.js'
import { RedisServer } from '../helpers/redis-server.js'

// Sessions across nodes on one Redis: the window, replay, takeover and user data hold when the user links again
// on another node, also after the node that held it was killed (SIGKILL).
const redis = await RedisServer.start(t)
const say = (text: string): { type: string, payload: string } => ({ type: 'note/say', payload: text })

t.test('the reconnection window ends once when the node that unlinked the user died; never for a user that relinked on another node', async t => {
  const options = { reconnectWindowMilliseconds: 1_000 }
  const dead = await spawnNodeProcess(t, redis, 'dead', 'window', options)
  const b = await node(t, redis, 'b', options, 'window')
  const c = await node(t, redis, 'c', options, 'window')
  const events = [record(b), record(c)]
  const watcher = await connect(b)
  await watcher.linked('watcher', 3)
  const { client: alice } = await linkTo(dead.port, 'alice', 5)
  await linkTo(dead.port, 'bob', 7)
  await watcher.take(4)
  // bob's window starts where he is unlinked, on the dead node; he relinks on c before it ends.
  alice.ws.on('close', () => {})
  dead.child.kill('SIGKILL')
  t.strictSame(await watcher.take(2, nodeTimeoutMilliseconds + 1_500), [frames.unlinked('alice'), frames.unlinked('bob')])
  const bob = await connect(c)
  await bob.linked('bob', 7)
  t.strictSame(await watcher.take(2, 3_000), [frames.linked('bob'), frames.left('alice')])
  const leaves = events.flat().filter(([name]) => name === 'leave')
  t.strictSame(leaves, [['leave', 'alice']], 'one leave event in the whole cluster')
  t.strictSame(b.linkServer.getUsers(), [{ username: 'watcher', isLinked: true }, { username: 'bob', isLinked: true }])
  t.strictSame(await watcher.settle(), [])
})

t.test('replay across nodes: what any node sent an unlinked user is delivered when it links again on another', async t => {
  const a = await node(t, redis, 'a', { replay: {}, linkConflict: 'takeover' }, 'replay')
  const b = await node(t, redis, 'b', { replay: {}, linkConflict: 'takeover' }, 'replay')
  const c = await node(t, redis, 'c', { replay: {}, linkConflict: 'takeover' }, 'replay')
  const alice = await connect(a)
  await alice.linked('alice', 3)
  b.linkServer.send('alice', say('live'))
  t.strictSame(await alice.take(1), [say('live')])
  await alice.confirmed()
  alice.send({ type: 'krmx/unlink' })
  await alice.take(1)
  await eventually(() => !b.linkServer.isLinked('alice') && !c.linkServer.isLinked('alice'), () => 'the unlink did not reach b and c')
  b.linkServer.send('alice', say('from b'))
  c.linkServer.broadcast(say('from c'))
  a.linkServer.broadcast(say('skipped'), 'alice')
  const again = await connect(c)
  const linked = next(c, 'link')
  again.requestLink('alice')
  t.strictSame(await linked, ['alice', { data: undefined, replay: { replayed: 2, lost: 0 } }])
  t.strictSame(await again.take(5), [frames.accepted, frames.joined('alice'), frames.linked('alice'), say('from b'), say('from c')])
  a.linkServer.send('alice', say('after'))
  t.strictSame(await again.take(1), [say('after')], 'nothing twice, nothing lost')
  t.strictSame(await again.settle(), [])
})

t.test('replay after a node death: a user linked to a killed node gets, on another node, all its dead socket did not confirm', async t => {
  const options = { replay: {} }
  const dead = await spawnNodeProcess(t, redis, 'dead', 'death', options)
  const b = await node(t, redis, 'b', options, 'death')
  const raw = await RecordingClient.open(dead.port)
  raw.link('alice')
  await raw.received(3)
  b.linkServer.send('alice', say('confirmed'))
  await raw.received(4)
  await eventually(() => raw.pings.length === 1, () => JSON.stringify(raw.pings))
  raw.answering = false
  b.linkServer.send('alice', say('in flight'))
  b.linkServer.broadcast(say('also in flight'))
  await raw.received(6)
  const unlinked = next(b, 'unlink')
  dead.child.kill('SIGKILL')
  await unlinked
  b.linkServer.send('alice', say('while away'))
  const again = await connect(b)
  const linked = next(b, 'link')
  again.requestLink('alice')
  const [, info] = await linked
  t.equal(info.replay?.lost, 0)
  const replayed = (await again.take(3 + (info.replay?.replayed ?? 0))).slice(3)
  // The dead node saved what alice confirmed at its heartbeats: the confirmation of the first may not have been saved.
  t.strictSame(replayed.slice(-3), [say('in flight'), say('also in flight'), say('while away')])
  t.ok(replayed.length === 3 || (replayed.length === 4 && JSON.stringify(replayed[0]) === JSON.stringify(say('confirmed'))),
    `at most the one confirmed within the last heartbeat again: ${JSON.stringify(replayed)}`)
  raw.cut()
})

t.test('takeover across nodes: takeovers racing on two nodes end with one connection linked; user data is seen on every node', async t => {
  const options = { linkConflict: 'takeover' as const }
  const a = await node(t, redis, 'a', options, 'takeover')
  const b = await node(t, redis, 'b', options, 'takeover')
  const c = await node(t, redis, 'c', options, 'takeover')
  for (const app of [a, b, c]) {
    app.linkServer.on('authenticate', async (_username, info) => {
      await new Promise(resolve => setTimeout(resolve, 50))
      return { tab: info.auth }
    })
  }
  const old = await connect(a)
  old.requestLink('alice', { auth: 'old' })
  await old.take(3)
  const closed = old.closed()
  const racers = [await connect(b), await connect(c)]
  racers[0].requestLink('alice', { auth: 'b' })
  racers[1].requestLink('alice', { auth: 'c' })
  const answers = await Promise.all(racers.map(async racer => (await racer.take(1))[0]))
  const winner = answers.findIndex(answer => answer.type === 'krmx/accepted')
  t.strictSame(answers[1 - winner], frames.rejected('user alice is already linked to a connection'))
  t.strictSame(await closed, { code: 4001, reason: 'linked from another connection' })
  const tab = winner === 0 ? 'b' : 'c'
  await eventually(() => [a, b, c].every(app => app.linkServer.getUser('alice')?.data !== undefined &&
    (app.linkServer.getUser('alice')?.data as { tab: string }).tab === tab), () => JSON.stringify([a, b, c].map(app => app.linkServer.getUser('alice'))))
  t.strictSame([a, b, c].map(app => app.linkServer.getUser('alice')), [a, b, c].map(() => ({ username: 'alice', isLinked: true, data: { tab } })))
  t.strictSame([a, b, c].map(app => app.linkServer.getStats().linkedUsers), winner === 0 ? [0, 1, 0] : [0, 0, 1])
})

/** A client of the test's own, to look into Redis and act on it as an operator would. */
async function operator (t: Test, server = redis): Promise<Redis> {
  const client = new Redis(server.url)
  t.teardown(() => { client.disconnect() })
  return client
}

t.test('a message that reaches a node before the link it is for is applied there follows the replay, in order', async t => {
  const a = await node(t, redis, 'a', { replay: {} }, 'early')
  const b = await node(t, redis, 'b', { replay: {} }, 'early')
  await a.linkServer.join('alice')
  await eventually(() => b.linkServer.getUser('alice') !== undefined, () => 'b did not hear of alice')
  b.linkServer.send('alice', say('missed'))
  const ops = await operator(t)
  // The log reader of a is cut off (it reconnects after 200 ms): a commits alice's link, but applies it only then.
  await killConnection(ops, 'a:reader')
  const alice = await connect(a)
  alice.requestLink('alice')
  const links = '{early}:links'
  for (let tries = 0; await ops.hget(links, 'alice') === null && tries < 1_000; tries++) {
    await new Promise(resolve => setImmediate(resolve))
  }
  b.linkServer.send('alice', say('early'))
  t.strictSame(await alice.take(5), [frames.accepted, frames.joined('alice'), frames.linked('alice'), say('missed'), say('early')])
  b.linkServer.send('alice', say('live'))
  t.strictSame(await alice.take(1), [say('live')])
  t.strictSame(await alice.settle(), [], 'nothing twice')
})

t.test('a node that starts later loads the users with their data; a window whose deadline Redis moved waits for it', async t => {
  const a = await node(t, redis, 'a', { reconnectWindowMilliseconds: 300 }, 'late')
  a.linkServer.on('authenticate', (_username, info, _reject, _markAsync, attach) => { attach({ auth: info.auth }) })
  const alice = await connect(a)
  alice.requestLink('alice', { auth: 'token' })
  await alice.take(3)
  const late = await node(t, redis, 'late', {}, 'late')
  t.strictSame(late.linkServer.getUser('alice'), { username: 'alice', isLinked: true, data: { auth: 'token' } })
  const carol = await connect(a)
  carol.requestLink('carol', { auth: 'c' })
  await carol.take(5)
  const events = record(a)
  const ops = await operator(t)
  alice.send({ type: 'krmx/unlink' })
  await alice.take(1)
  // Redis holds the deadline: moved later (a clock Redis has behind this node's), the timer of a waits again for it.
  const [seconds, microseconds] = await ops.time()
  await ops.zadd('{late}:expiry', 'XX', Number(seconds) * 1000 + Math.floor(Number(microseconds) / 1000) + 600, 'alice')
  carol.send({ type: 'krmx/unlink' })
  await carol.take(1)
  await eventually(() => events.filter(([name]) => name === 'leave').length === 2, () => JSON.stringify(events), 5_000)
  t.strictSame(events, [['unlink', 'alice'], ['unlink', 'carol'], ['leave', 'carol'], ['leave', 'alice']])
})

t.test('what a linked user confirmed is saved at the heartbeat; a message sent while Redis is away is logged as lost', async t => {
  const own = await RedisServer.start(t)
  const logs = new LogRecorder()
  const a = await node(t, own, 'a', { replay: {}, fastify: { logger: { level: 'warn', stream: logs.stream } } }, 'saved')
  const alice = await connect(a)
  await alice.linked('alice', 3)
  a.linkServer.send('alice', say('one'))
  t.strictSame(await alice.take(1), [say('one')])
  const ops = await operator(t, own)
  let saved: string | null = null
  for (let tries = 0; saved !== '1' && tries < 100; tries++) {
    saved = await ops.hget('{saved}:mack', 'alice')
    await new Promise(resolve => setTimeout(resolve, 50))
  }
  t.equal(saved, '1', 'the heartbeat saved what alice confirmed')
  ops.disconnect()
  await own.stop()
  a.linkServer.send('alice', say('into the void'))
  const lines = await logs.count(1)
  t.strictSame(lines.map(line => line.msg).filter(msg => msg.startsWith('a message could not be kept')), ['a message could not be kept for replay and was lost: Redis does not answer'])
})

t.test('a confirmation never outlives its user: one that left before a heartbeat saved it leaves no trace, and a new user of its name replays from nothing', async t => {
  const a = await node(t, redis, 'a', { replay: {} }, 'outlive')
  const ops = await operator(t, redis)
  const alice = await connect(a)
  await alice.linked('alice', 3)
  a.linkServer.send('alice', say('one'))
  t.strictSame(await alice.take(1), [say('one')])
  await alice.confirmed() // confirmed to the node, which saves it at its next heartbeat
  alice.send({ type: 'krmx/leave' })
  t.strictSame(await alice.take(2), [frames.unlinked('alice'), frames.left('alice')])
  // Two heartbeats of the node after the leave: its score in {ns}:nodes is the time of its last one.
  let last = await ops.zscore('{outlive}:nodes', 'a')
  let beats = 0
  const deadline = Date.now() + 10_000
  while (beats < 2) {
    if (Date.now() > deadline) {
      throw new Error(`the node beat ${beats} times in 10 s (last at ${String(last)})`)
    }
    await new Promise(resolve => setTimeout(resolve, 50))
    const beat = await ops.zscore('{outlive}:nodes', 'a')
    if (beat !== last) {
      beats++
      last = beat
    }
  }
  const linked = next(a, 'link')
  alice.requestLink('alice')
  t.strictSame(await alice.take(3), [frames.accepted, frames.joined('alice'), frames.linked('alice')])
  t.strictSame((await linked)[1].replay, { replayed: 0, lost: 0 }, 'the new alice lost nothing, and was replayed nothing')
  t.strictSame(await ops.hgetall('{outlive}:mack'), {}, 'no confirmation was saved for the alice that left, nor for the new one')
})

t.test('10,000 users whose reconnection windows end together all leave within a heartbeat, in batches, not 1,000 a beat', async t => {
  const ops = await operator(t)
  const [seconds, micros] = await ops.time()
  const deadline = Number(seconds) * 1_000 + Math.floor(Number(micros) / 1_000) + 2_000 // Redis' clock, as the scripts read it
  const count = 10_000
  const seed = ops.pipeline()
  for (let user = 1; user <= count; user++) {
    seed.zadd('{many}:users', user, `user${user}`)
    seed.zadd('{many}:expiry', deadline, `user${user}`)
  }
  seed.set('{many}:seq', count)
  await seed.exec()
  // As a node holding them would have left them when it died: unlinked, each with the same deadline.
  const a = await node(t, redis, 'a', { reconnectWindowMilliseconds: 1_000, maxUsers: 20_000 }, 'many')
  t.equal(a.linkServer.getUsers().length, count)
  const events = record(a)
  await eventually(() => a.linkServer.getUsers().length === 0, () => `${a.linkServer.getUsers().length} users left to leave`, 20_000)
  const [after, afterMicros] = await ops.time()
  const late = Number(after) * 1_000 + Math.floor(Number(afterMicros) / 1_000) - deadline
  t.ok(late < 2_500, `every user left ${late} ms after the deadline: within a heartbeat (500 ms) and the batches, not ten heartbeats`)
  t.strictSame([await ops.zcard('{many}:users'), await ops.zcard('{many}:expiry')], [0, 0])
  t.equal(events.filter(([name]) => name === 'leave').length, count, 'each leave emitted once, by the node that made it')
})
