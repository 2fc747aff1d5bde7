import { readFileSync } from 'node:fs'
import Fastify from 'fastify'
import t, { type Test } from 'tap'
import type { Admission, Backend, BackendSink, Change, LinkedHere, RoomBackend, SnapshotUser } from '../../lib/backend/backend.js'
import { CommitRefused } from '../../lib/backend/backend.js'
import { type EncodedFrame, encodeText } from '../../lib/frames.js'
import { Mirror, type MirroredUser } from '../../lib/space/mirror.js'
import type { Sessions } from '../../lib/options/resolve.js'
import { MemoryBackend } from '../../lib/backend/memory.js'
import { createRedisBackend } from '../../lib/backend/redis.js'
import { eventually } from '../helpers/waits.js'
import { ioredisMajors } from '../helpers/ioredis-majors.js'
import { RedisServer } from '../helpers/redis-server.js'

// One contract, two backends: the in-memory default and Redis, driven directly, without a link server.
// Both number their changes alike (one sequence for joins, links, unlinks and leaves), so the same
// exact values hold for both.

/** The users as a node's mirror has them after the changes it was handed. */
class MirrorOfChanges extends Mirror {
  apply (change: Change): void {
    switch (change.op) {
      case 'join':
        this.join(change.username, change.order)
        break
      case 'link':
        this.setLink(this.get(change.username) ?? this.join(change.username, change.generation), { node: change.node, generation: change.generation })
        break
      case 'unlink':
        this.setLink(this.get(change.username) as MirroredUser, undefined)
        break
      case 'leave':
        this.leave(change.username)
    }
  }
}

class RecordingSink implements BackendSink {
  readonly changes: Change[] = []
  readonly resets: Array<{ users: SnapshotUser[], keepMissing: boolean }> = []
  readonly delivered: Array<[string, string, number]> = []
  readonly broadcasts: Array<[string, string | undefined]> = []
  linked: LinkedHere[] = []
  apply (change: Change): boolean { this.changes.push(change); this.users.apply(change); return true }
  reset (users: SnapshotUser[], keepMissing: boolean): void { this.resets.push({ users, keepMissing }) }
  deliver (username: string, frame: EncodedFrame, number: number): void { this.delivered.push([username, frame.payload.toString(), number]) }
  broadcast (frame: EncodedFrame, skip: string | undefined): void { this.broadcasts.push([frame.payload.toString(), skip]) }
  linkedHere (): LinkedHere[] { return this.linked }
  /** The users as the applied changes made them, which the in-memory store reads. */
  readonly users = new MirrorOfChanges()
}

type Made = { backend: Backend, sink: RecordingSink } & RoomBackend
type Make = (t: Test, nodeId: string, sharing?: Backend) => Promise<Made>

const log = Fastify().log
let namespaces = 0

async function started (t: Test, backend: Backend): Promise<Made> {
  const sink = new RecordingSink()
  const room = backend.open('', sink)
  await backend.start({ serve: () => {} })
  t.teardown(() => backend.stop())
  return { backend, sink, ...room }
}

const rooms = { acceptNewRooms: true, maxRooms: Infinity }
const open = { acceptNewUsers: true, maxUsers: 100, ...rooms }
const closed = { acceptNewUsers: false, maxUsers: 100, ...rooms }
/** Room for `maxUsers` users. */
const upTo = (maxUsers: number): Admission => ({ acceptNewUsers: true, maxUsers, ...rooms })

async function refusalOf (commit: Promise<void>): Promise<string> {
  try {
    await commit
    return 'committed'
  } catch (err) {
    return (err as CommitRefused).refusal
  }
}

function contract (name: string, make: Make, nodeId: string, isShared: boolean): void {
  t.test(`${name}: a claim reserves a user for one link, and the link is handed back as a change`, async t => {
    const { sink, store } = await make(t, nodeId)
    const claim = await store.claim('alice', open)
    t.match(claim, { claimed: true, isNewUser: true, data: undefined })
    t.strictSame(await store.claim('alice', open), { claimed: false, refusal: 'already-linked' }, 'a claimed user cannot be claimed twice')
    store.release('alice', 'not-the-token')
    t.strictSame(await store.claim('alice', open), { claimed: false, refusal: 'already-linked' }, 'only its own token releases a claim')
    const token = (claim as { token: string }).token
    t.strictSame(await store.link('alice', token, open, undefined), { linked: true, generation: 1 })
    t.strictSame(sink.changes, [{ op: 'link', username: 'alice', origin: nodeId, node: nodeId, generation: 1, token, isNewUser: true, data: undefined }])
    t.strictSame(await store.claim('alice', open), { claimed: false, refusal: 'already-linked' }, 'a linked user cannot be claimed')
  })

  t.test(`${name}: a released claim frees the user; the limits refuse claims and links`, async t => {
    const { sink, store } = await make(t, nodeId)
    const first = await store.claim('alice', open) as { token: string }
    store.release('alice', first.token)
    const second = await store.claim('alice', open)
    t.match(second, { claimed: true, isNewUser: true, data: undefined }, 'the released user can be claimed again')
    t.strictSame(await store.claim('bob', closed), { claimed: false, refusal: 'not-accepting-new-users' })
    await store.join('carol', upTo(100))
    t.strictSame(await store.claim('dave', upTo(1)), { claimed: false, refusal: 'full' })
    const carol = await store.claim('carol', closed)
    t.match(carol, { claimed: true, isNewUser: false, data: undefined }, 'an existing user may link when new ones may not')
    t.strictSame(await store.link('alice', (second as { token: string }).token, upTo(1), undefined),
      { linked: false, refusal: 'full' }, 'a user made while alice was authenticated filled the server')
    const again = await store.claim('alice', open) as { token: string }
    t.strictSame(await store.link('alice', again.token, closed, undefined), { linked: false, refusal: 'not-accepting-new-users' })
    t.strictSame(await store.link('carol', (carol as { token: string }).token, closed, undefined), { linked: true, generation: 2 })
    t.strictSame(sink.changes, [
      { op: 'join', username: 'carol', origin: nodeId, order: 1 },
      { op: 'link', username: 'carol', origin: nodeId, node: nodeId, generation: 2, token: (carol as { token: string }).token, isNewUser: false, data: undefined }
    ])
  })

  t.test(`${name}: closing a room the node does not serve does nothing`, async t => {
    const { backend, store, sink } = await make(t, nodeId)
    await store.join('alice', upTo(10))
    backend.close('never-opened')
    t.strictSame(sink.changes, [{ op: 'join', username: 'alice', origin: nodeId, order: 1 }])
    t.equal(await refusalOf(store.join('alice', upTo(10))), 'exists', 'the room it serves is untouched')
  })

  t.test(`${name}: join, unlink and leave commit changes, or are refused with a reason`, async t => {
    const { sink, store } = await make(t, nodeId)
    await store.join('alice', upTo(100))
    t.equal(await refusalOf(store.join('alice', upTo(100))), 'exists')
    t.equal(await refusalOf(store.join('bob', upTo(1))), 'full')
    t.equal(await refusalOf(store.unlink('bob', undefined, 'server')), 'unknown')
    t.equal(await refusalOf(store.unlink('alice', undefined, 'server')), 'not-linked')
    t.equal(await refusalOf(store.unlink('alice', 7, 'client')), 'committed', 'a fenced unlink of a link that ended does nothing')
    t.equal(await refusalOf(store.leave('bob', 'kick')), 'unknown')
    const claim = await store.claim('alice', open) as { token: string }
    await store.link('alice', claim.token, open, undefined)
    t.equal(await refusalOf(store.unlink('alice', 1, 'client')), 'committed', 'a fenced unlink of another generation does nothing')
    await store.unlink('alice', 2, 'heartbeat')
    const relinked = await store.claim('alice', open) as { token: string }
    await store.link('alice', relinked.token, open, undefined)
    await store.unlink('alice', undefined, 'server')
    await store.leave('alice', 'kick')
    t.strictSame(sink.changes, [
      { op: 'join', username: 'alice', origin: nodeId, order: 1 },
      { op: 'link', username: 'alice', origin: nodeId, node: nodeId, generation: 2, token: claim.token, isNewUser: false, data: undefined },
      { op: 'unlink', username: 'alice', origin: nodeId, generation: 2, cause: 'heartbeat' },
      { op: 'link', username: 'alice', origin: nodeId, node: nodeId, generation: 4, token: relinked.token, isNewUser: false, data: undefined },
      { op: 'unlink', username: 'alice', origin: nodeId, generation: 4, cause: 'server' },
      { op: 'leave', username: 'alice', origin: nodeId, cause: 'kick' }
    ])
  })

  t.test(`${name}: a linked user that leaves is unlinked with it; closeNode ${isShared ? "unlinks this node's users" : 'makes every user leave'}`, async t => {
    const { backend, sink, store } = await make(t, nodeId)
    const alice = await store.claim('alice', open) as { token: string }
    await store.link('alice', alice.token, open, undefined)
    await store.leave('alice', 'client')
    const bob = await store.claim('bob', open) as { token: string }
    await store.link('bob', bob.token, open, undefined)
    await store.join('carol', upTo(100))
    sink.linked = [{ username: 'bob', generation: 3, order: 3, data: undefined, sent: 0 }]
    await backend.closeNode()
    const before = [
      { op: 'link', username: 'alice', origin: nodeId, node: nodeId, generation: 1, token: alice.token, isNewUser: true, data: undefined },
      { op: 'leave', username: 'alice', origin: nodeId, cause: 'client' },
      { op: 'link', username: 'bob', origin: nodeId, node: nodeId, generation: 3, token: bob.token, isNewUser: true, data: undefined },
      { op: 'join', username: 'carol', origin: nodeId, order: 4 }
    ]
    if (isShared) {
      t.strictSame(sink.changes, [...before, { op: 'unlink', username: 'bob', origin: nodeId, generation: 3, cause: 'close' }])
      t.match(await store.claim('bob', closed), { claimed: true, isNewUser: false, data: undefined }, 'the unlinked user stays, and may link again')
    } else {
      t.strictSame(sink.changes, [
        ...before,
        { op: 'leave', username: 'bob', origin: nodeId, cause: 'close' },
        { op: 'leave', username: 'carol', origin: nodeId, cause: 'close' }
      ])
    }
  })

  t.test(`${name}: a broadcast reaches this node's sink at once${isShared ? ' and every other node once' : ''}; a message reaches its user's node`, async t => {
    const { backend, sink, bus } = await make(t, nodeId)
    if (!isShared) {
      bus.deliver(nodeId, 'bob', encodeText('{"type":"direct"}'))
      bus.broadcast(encodeText('{"type":"all"}'), 'bob')
      t.strictSame(sink.delivered, [['bob', '{"type":"direct"}', 0]])
      t.strictSame(sink.broadcasts, [['{"type":"all"}', 'bob']])
      return
    }
    const { backend: other, sink: otherSink, bus: otherBus } = await make(t, `${nodeId}-other`, backend)
    bus.deliver(other.nodeId, 'bob', encodeText('{"type":"direct"}'))
    bus.broadcast(encodeText('{"type":"all"}'), 'bob')
    bus.broadcast(encodeText('{"type":"all"}'), undefined)
    t.strictSame(sink.broadcasts, [['{"type":"all"}', 'bob'], ['{"type":"all"}', undefined]], 'this node\'s users hear it at once, without a round trip')
    otherBus.broadcast(encodeText('{"type":"back"}'), undefined)
    const arrived = (): boolean => otherSink.delivered.length === 1 && otherSink.broadcasts.length === 3 && sink.broadcasts.length === 3
    await eventually(arrived, () => JSON.stringify([otherSink.delivered, otherSink.broadcasts, sink.broadcasts]))
    t.strictSame(otherSink.delivered, [['bob', '{"type":"direct"}', 0]])
    t.strictSame(otherSink.broadcasts, [['{"type":"back"}', undefined], ['{"type":"all"}', 'bob'], ['{"type":"all"}', undefined]])
    t.strictSame(sink.broadcasts, [['{"type":"all"}', 'bob'], ['{"type":"all"}', undefined], ['{"type":"back"}', undefined]], 'a node hears its own broadcasts once')
  })
}

const sessionsOff: Sessions = { windowMilliseconds: 0, replay: undefined, takeover: false }
contract('in memory', async t => started(t, new MemoryBackend(sessionsOff)), 'local', false)

const redis = await RedisServer.start(t)
const namespaceOf = new WeakMap<Backend, string>()
for (const { name, load } of ioredisMajors) {
  contract(`Redis with ${name}`, async (t, nodeId, sharing) => {
    const namespace = sharing === undefined ? `contract-${++namespaces}` : namespaceOf.get(sharing) as string
    const options = { redis: redis.url, namespace, nodeId, nodeTimeoutMilliseconds: 10_000, rooms: false }
    const timeouts = { authTimeoutMilliseconds: 10_000, connectTimeoutMilliseconds: 15_000, sessions: sessionsOff }
    const made = await started(t, await createRedisBackend(options, timeouts, log, load))
    namespaceOf.set(made.backend, namespace)
    return made
  }, 'node-a', true)
}

t.test('the contract runs on every major of ioredis that the peer range allows', async t => {
  t.strictSame(ioredisMajors.map(({ major }) => major), [5, 6])
  const { peerDependencies } = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { peerDependencies: Record<string, string> }
  t.equal(peerDependencies.ioredis, '^5.4.0 || ^6.0.0', 'a new major is added here and to the peer range together')
})
