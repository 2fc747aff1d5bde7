import { once } from 'node:events'
import t from 'tap'
import { connect, inject, unresponsive } from '../helpers/clients.js'
import { record } from '../helpers/events.js'
import { frames, version } from '../helpers/frames.js'
import { clientFrame } from '../../support/raw-client.js'
import { eventually } from '../helpers/waits.js'
import type { TestBackend } from '../helpers/app.js'

/** The pending-link-queue tests, on `backend`. */
export default function suite ({ build, memoryOnly }: TestBackend): void {
  /** An authenticate listener that holds every link until `release()` is called. */
  function holdLinks (app: Awaited<ReturnType<typeof build>>): { release: () => void, started: () => number } {
    const waiting: Array<() => void> = []
    let started = 0
    app.linkServer.on('authenticate', (_username, _info, _reject, markAsync) => {
      started++
      markAsync(() => new Promise<void>(resolve => { waiting.push(resolve) }))
    })
    return {
      release: () => { for (const resolve of waiting.splice(0)) resolve() },
      started: () => started
    }
  }

  t.test('maxQueuedFrames: a connection that sends more frames than that while its link is decided is closed with 1008', async t => {
    const app = await build(t, { listen: true, maxQueuedFrames: 3, authTimeoutMilliseconds: 60_000 })
    const events = record(app)
    const hold = holdLinks(app)
    const flooder = await connect(app)
    flooder.requestLink('flooder')
    const closed = flooder.closed()
    for (let index = 0; index < 4; index++) {
      flooder.send({ type: 'chat/say', payload: index })
    }
    t.strictSame(await closed, { code: 1008, reason: 'too many frames while linking' })
    t.strictSame(flooder.unread(), [], 'the pending link was never answered')
    hold.release()
    t.strictSame(app.linkServer.getUsers(), [])
    t.strictSame(events, [])
  })

  t.test('maxQueuedFrames: frames up to the limit wait and are handled after the decision', async t => {
    const app = await build(t, { maxQueuedFrames: 3 })
    const hold = holdLinks(app)
    const messages: unknown[] = []
    app.linkServer.on('message', (username, message) => { messages.push([username, message]) })
    const alice = await inject(app)
    alice.requestLink('alice')
    for (let index = 0; index < 3; index++) {
      alice.send({ type: 'chat/say', payload: index })
    }
    await alice.settle()
    await eventually(() => hold.started() === 1, () => 'the authentication did not start') // a claim may be a Redis round trip
    hold.release()
    t.strictSame(await alice.take(3), [frames.accepted, frames.joined('alice'), frames.linked('alice')])
    await alice.settle()
    t.strictSame(messages, [0, 1, 2].map(index => ['alice', { type: 'chat/say', payload: index }]))
  })

  t.test('maxQueuedBytes (default 128 KiB): large frames during a pending link close the connection before they pin memory', async t => {
    const app = await build(t, { listen: true, authTimeoutMilliseconds: 60_000 })
    const hold = holdLinks(app)
    const flooder = await connect(app)
    flooder.requestLink('flooder')
    const closed = flooder.closed()
    const big = { type: 'doc/put', payload: 'x'.repeat(63 * 1024) }
    flooder.send(big)
    flooder.send(big) // 126 KiB and some: still within
    flooder.send(big) // beyond 128 KiB
    t.strictSame(await closed, { code: 1008, reason: 'too many frames while linking' })
    await eventually(() => app.linkServer.getStats().connections === 0, () => JSON.stringify(app.linkServer.getStats()))
    hold.release()
  })

  t.test('the byte count follows the queue: what was handled no longer counts', memoryOnly('in a cluster the link frame after an unlink waits too, and counts'), async t => {
    const app = await build(t, { maxQueuedBytes: 300 })
    const hold = holdLinks(app)
    const alice = await inject(app)
    const frame = { type: 'chat/say', payload: 'x'.repeat(150 - 32) }
    t.equal(JSON.stringify(frame).length, 150)
    alice.requestLink('alice')
    alice.send(frame)
    alice.send(frame)
    await alice.settle()
    await eventually(() => hold.started() === 1, () => 'the authentication did not start') // a claim may be a Redis round trip
    hold.release()
    t.strictSame(await alice.take(3), [frames.accepted, frames.joined('alice'), frames.linked('alice')])
    alice.send({ type: 'krmx/unlink' })
    t.strictSame(await alice.take(1), [frames.unlinked('alice')])
    alice.requestLink('alice')
    alice.send(frame)
    alice.send(frame) // 300 bytes queued behind this link, as many as behind the first: not closed
    await alice.settle()
    await eventually(() => hold.started() === 2, () => 'the authentication did not start') // a claim may be a Redis round trip
    hold.release()
    t.strictSame(await alice.take(3), [frames.accepted, frames.joined('alice'), frames.linked('alice')])
    t.strictSame(app.linkServer.getUsers(), [{ username: 'alice', isLinked: true }])
  })

  t.test('nothing starts once close began: a krmx/link queued behind a pending link starts no authentication', async t => {
    const app = await build(t, { listen: true, authTimeoutMilliseconds: 60_000 })
    const hold = holdLinks(app)
    const client = await connect(app)
    client.requestLink('first')
    client.requestLink('second') // queued behind the first
    client.send({ type: 'chat/say' })
    await client.settle()
    await eventually(() => hold.started() === 1, () => 'the authentication did not start') // a claim may be a Redis round trip
    t.equal(hold.started(), 1)
    const closed = client.closed()
    await app.close()
    t.strictSame(await closed, { code: 1001, reason: 'server closing' })
    hold.release()
    t.equal(hold.started(), 1, 'the queued link was never authenticated')
    t.strictSame(client.unread(), [], 'and nothing was answered')
  })

  t.test('a connection closed for its queue while its link is refused is closed once, and told nothing more', async t => {
    const app = await build(t, { listen: true, acceptNewUsers: false, maxLinkAttempts: 1, maxQueuedFrames: 1 })
    const { port } = app.server.address() as { port: number }
    const socket = await unresponsive(port)
    const received: Buffer[] = []
    socket.on('data', (chunk: Buffer) => received.push(chunk))
    const ended = once(socket, 'close')
    // One write, so one chunk: the link request and two frames behind it arrive before its refusal is decided.
    socket.write(Buffer.concat([
      clientFrame(JSON.stringify({ type: 'krmx/link', payload: { username: 'stranger', version } })),
      clientFrame(JSON.stringify({ type: 'chat/say' })),
      clientFrame(JSON.stringify({ type: 'chat/say' }))
    ]))
    const reason = Buffer.from('too many frames while linking')
    await eventually(() => Buffer.concat(received).length >= 4 + reason.length, () => Buffer.concat(received).toString('hex'))
    t.strictSame(Buffer.concat(received), Buffer.concat([Buffer.from([0x88, 2 + reason.length, 0x03, 0xf0]), reason]),
      'a close frame with 1008, and no krmx/rejected nor a second close')
    socket.destroy()
    await ended
  })
}
