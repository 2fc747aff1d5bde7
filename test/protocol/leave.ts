import t from 'tap'
import { inject } from '../helpers/clients.js'
import { record } from '../helpers/events.js'
import { frames } from '../helpers/frames.js'
import type { TestBackend } from '../helpers/app.js'

/** The leave tests, on `backend`. */
export default function suite ({ build, linkedPair }: TestBackend): void {
  t.test('krmx/leave: unlinked to everyone, then left to the former connection and everyone; the connection stays open', async t => {
    const { app, alice, bob, events } = await linkedPair(t)
    bob.send({ type: 'krmx/leave' })
    t.strictSame(await bob.take(2), [frames.unlinked('bob'), frames.left('bob')])
    t.strictSame(await alice.take(2), [frames.unlinked('bob'), frames.left('bob')])
    t.strictSame(events, [['unlink', 'bob'], ['leave', 'bob']])
    t.strictSame(app.linkServer.getUsers(), [{ username: 'alice', isLinked: true }])
    t.strictSame(await bob.linked('bob', 5), [
      frames.accepted, frames.joined('alice'), frames.linked('alice'), frames.joined('bob'), frames.linked('bob')
    ], 'the connection may link again, as a new user')
  })

  t.test('kick of an unlinked user: only left, to every linked connection', async t => {
    const app = await build(t)
    const alice = await inject(app)
    await alice.linked('alice', 3)
    await app.linkServer.join('bob')
    t.strictSame(await alice.take(1), [frames.joined('bob')])
    const events = record(app)
    await app.linkServer.kick('bob')
    t.strictSame(await alice.take(1), [frames.left('bob')])
    t.strictSame(events, [['leave', 'bob']])
  })

  t.test('kick of a linked user: unlinked and left, to it and to the others; its socket stays open, unlinked, and may link again', async t => {
    const { app, alice, bob, events } = await linkedPair(t)
    await app.linkServer.kick('bob')
    t.strictSame(await bob.take(2), [frames.unlinked('bob'), frames.left('bob')])
    t.strictSame(await alice.take(2), [frames.unlinked('bob'), frames.left('bob')])
    t.strictSame(events, [['unlink', 'bob'], ['leave', 'bob']])
    t.equal(bob.ws.readyState, bob.ws.OPEN)
    t.strictSame(app.linkServer.getStats(), { connections: 2, users: 1, rooms: 1, linkedUsers: 1, invalidMessages: 0 })
    t.strictSame(await bob.linked('bob', 5), [
      frames.accepted, frames.joined('alice'), frames.linked('alice'), frames.joined('bob'), frames.linked('bob')
    ])
  })
}
