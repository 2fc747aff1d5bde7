import { once } from 'node:events'
import t, { type Test } from 'tap'
import WebSocket from 'ws'
import { linkTo, node, type NodeProcess, nodeTimeoutMilliseconds, spawnNodeProcess } from '../helpers/cluster.js'
import { record } from '../helpers/events.js'
import { frames } from '../helpers/frames.js'
import { eventually } from '../helpers/waits.js'
import { RedisServer } from '../helpers/redis-server.js'

// Nodes in processes of their own, so that one can be killed (SIGKILL) or stalled (SIGSTOP) as a crashed
// or frozen machine would be; each prints its port and its events. The test ends only what it started.
const redis = await RedisServer.start(t)
const spawnNode = async (t: Test, nodeId: string, namespace: string): Promise<NodeProcess> => spawnNodeProcess(t, redis, nodeId, namespace)

t.test('a node killed with SIGKILL leaves no ghosts: its users are unlinked once, within the node timeout + 1.5 s, and link again elsewhere', async t => {
  const a = await spawnNode(t, 'a', 'killed')
  const b = await spawnNode(t, 'b', 'killed')
  const c = await node(t, redis, 'c', {}, 'killed')
  const eventsC = record(c)
  const { client: a1 } = await linkTo(a.port, 'a1', 3)
  await linkTo(a.port, 'a2', 5)
  const { client: b1 } = await linkTo(b.port, 'b1', 7)
  const { client: c1 } = await linkTo((c.server.address() as { port: number }).port, 'c1', 9)
  await b1.take(2)
  a1.ws.on('close', () => {})
  const killedAt = Date.now()
  a.child.kill('SIGKILL')
  t.strictSame(await c1.take(2, nodeTimeoutMilliseconds + 1_500), [frames.unlinked('a1'), frames.unlinked('a2')])
  const heardAfter = Date.now() - killedAt
  t.ok(heardAfter <= nodeTimeoutMilliseconds + 1_500, `heard within ${nodeTimeoutMilliseconds} + 1,500 ms (${heardAfter} ms)`)
  t.strictSame(await b1.take(2), [frames.unlinked('a1'), frames.unlinked('a2')])
  await eventually(() => [...b.events, ...eventsC.map(([event, username]) => ({ event, username }))].filter(({ event }) => event === 'unlink').length >= 2,
    () => JSON.stringify({ b: b.events, c: eventsC }))
  const sweepEvents = [...b.events.filter(({ event }) => event === 'unlink'), ...eventsC.filter(([event]) => event === 'unlink').map(([event, username]) => ({ event, username }))]
  t.strictSame(sweepEvents, [{ event: 'unlink', username: 'a1' }, { event: 'unlink', username: 'a2' }], 'one surviving node unlinked them, once')
  const { frames: relinked } = await linkTo(b.port, 'a1', 8)
  t.strictSame(relinked, [
    frames.accepted, frames.joined('a1'), frames.linked('a1'), frames.joined('a2'), frames.joined('b1'), frames.linked('b1'), frames.joined('c1'), frames.linked('c1')
  ], 'a1 links again on another node')
  t.strictSame(await c1.take(1), [frames.linked('a1')])
  t.strictSame(await c1.settle(), [], 'and nothing was heard twice')
})

t.test('a node that stalled past the timeout comes back: its stale link is ended there, nothing that moved on is unlinked, and it takes links again', async t => {
  const a = await spawnNode(t, 'a', 'stalled')
  const c = await node(t, redis, 'c', {}, 'stalled')
  const cPort = (c.server.address() as { port: number }).port
  const { client: stale } = await linkTo(a.port, 'alice', 3)
  const { client: watcher } = await linkTo(cPort, 'watcher', 5)
  await stale.take(2)
  a.child.kill('SIGSTOP')
  try {
    t.strictSame(await watcher.take(1, nodeTimeoutMilliseconds + 1_500), [frames.unlinked('alice')], 'the stalled node was declared dead')
    const { frames: moved } = await linkTo(cPort, 'alice', 5)
    t.strictSame(moved, [frames.accepted, frames.joined('alice'), frames.linked('alice'), frames.joined('watcher'), frames.linked('watcher')])
    t.strictSame(await watcher.take(1), [frames.linked('alice')])
  } finally {
    a.child.kill('SIGCONT')
  }
  t.strictSame(await stale.take(1), [frames.unlinked('alice')], 'the old connection hears of the sweep when its node wakes, and is unlinked')
  t.equal(stale.ws.readyState, WebSocket.OPEN, 'it stays open, and may link again')
  const { frames: fresh } = await linkTo(a.port, 'bob', 7)
  t.strictSame(fresh, [frames.accepted, frames.joined('alice'), frames.linked('alice'), frames.joined('watcher'), frames.linked('watcher'), frames.joined('bob'), frames.linked('bob')],
    'the node that came back takes links again, and knows the user space as it is')
  t.strictSame(await watcher.take(2), [frames.joined('bob'), frames.linked('bob')])
  t.strictSame(c.linkServer.getUsers(), [{ username: 'alice', isLinked: true }, { username: 'watcher', isLinked: true }, { username: 'bob', isLinked: true }],
    'alice, who moved on, is still linked')
  t.strictSame(a.events, [{ event: 'join', username: 'alice' }, { event: 'link', username: 'alice' }, { event: 'join', username: 'bob' }, { event: 'link', username: 'bob' }],
    'the node that came back emits no unlink of its own for the sweep')
})

t.test('a node killed and started again with the same nodeId ends the links its previous life left at once, and emits their unlink', async t => {
  const long = 60_000 // no timeout sweeps them within the test: only the new life can
  const first = await spawnNodeProcess(t, redis, 'fixed', 'restarted', {}, long)
  const c = await node(t, redis, 'c', { cluster: { nodeTimeoutMilliseconds: long } }, 'restarted')
  const { client: alice } = await linkTo(first.port, 'alice', 3)
  await linkTo(first.port, 'bob', 5)
  const { client: carol } = await linkTo((c.server.address() as { port: number }).port, 'carol', 7)
  alice.ws.on('close', () => {})
  const exited = once(first.child, 'exit')
  first.child.kill('SIGKILL')
  await exited
  const second = await spawnNodeProcess(t, redis, 'fixed', 'restarted', {}, long)
  t.strictSame(await carol.take(2), [frames.unlinked('alice'), frames.unlinked('bob')], 'unlinked as the new life starts, not after the timeout')
  await eventually(() => second.events.length >= 2, () => JSON.stringify(second.events))
  t.strictSame(second.events, [{ event: 'unlink', username: 'alice' }, { event: 'unlink', username: 'bob' }], 'the new life emits their unlink, once')
  const { frames: relinked } = await linkTo(second.port, 'alice', 6)
  t.strictSame(relinked, [frames.accepted, frames.joined('alice'), frames.linked('alice'), frames.joined('bob'), frames.joined('carol'), frames.linked('carol')],
    'alice links again on the restarted node')
  t.strictSame(await carol.take(1), [frames.linked('alice')])
  t.strictSame(c.linkServer.getUsers(), [{ username: 'alice', isLinked: true }, { username: 'bob', isLinked: false }, { username: 'carol', isLinked: true }])
})
