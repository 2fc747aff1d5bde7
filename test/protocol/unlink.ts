import t from 'tap'
import { connect } from '../helpers/clients.js'
import { record } from '../helpers/events.js'
import { frames } from '../helpers/frames.js'
import type { TestBackend } from '../helpers/app.js'

/** The unlink tests, on `backend`. */
export default function suite ({ build, linkedPair }: TestBackend): void {
  t.test('krmx/unlink: every linked connection, the unlinking one included, hears unlinked; the user stays', async t => {
    const { app, alice, bob, events } = await linkedPair(t)
    bob.send({ type: 'krmx/unlink' })
    t.strictSame(await bob.take(1), [frames.unlinked('bob')])
    t.strictSame(await alice.take(1), [frames.unlinked('bob')])
    t.strictSame(events, [['unlink', 'bob']])
    t.strictSame(app.linkServer.getUsers(), [{ username: 'alice', isLinked: true }, { username: 'bob', isLinked: false }])
    bob.send({ type: 'chat/say' })
    t.strictSame(await bob.take(1), [frames.rejected('unlinked connection')], 'the connection stays open, unlinked')
  })

  t.test('a linked connection that sends krmx/link is unlinked', async t => {
    const { alice, bob, events } = await linkedPair(t)
    bob.requestLink('bob')
    t.strictSame(await bob.take(1), [frames.unlinked('bob')])
    t.strictSame(await alice.take(1), [frames.unlinked('bob')])
    t.strictSame(events, [['unlink', 'bob']])
  })

  t.test('a linked connection that sends an unknown krmx/ type or a malformed frame is unlinked', async t => {
    const { alice, bob, events } = await linkedPair(t)
    bob.send({ type: 'krmx/hello' })
    t.strictSame(await bob.take(1), [frames.unlinked('bob')])
    await bob.linked('bob', 5)
    bob.ws.send('{not json')
    t.strictSame(await bob.take(1), [frames.unlinked('bob')])
    await bob.linked('bob', 5)
    bob.ws.send(Buffer.from('{"type":"chat/say"}'), { binary: true })
    t.strictSame(await bob.take(1), [frames.unlinked('bob')])
    t.strictSame(await alice.take(5), [
      frames.unlinked('bob'), frames.linked('bob'),
      frames.unlinked('bob'), frames.linked('bob'),
      frames.unlinked('bob')
    ])
    t.strictSame(events, [
      ['unlink', 'bob'], ['link', 'bob'],
      ['unlink', 'bob'], ['link', 'bob'],
      ['unlink', 'bob']
    ])
  })

  t.test('a socket that closes unlinks its user', async t => {
    const app = await build(t, { listen: true })
    const alice = await connect(app)
    await alice.linked('alice', 3)
    const bob = await connect(app)
    await bob.linked('bob', 5)
    await alice.take(2)
    const events = record(app)
    bob.ws.close()
    t.strictSame(await alice.take(1), [frames.unlinked('bob')])
    t.strictSame(events, [['unlink', 'bob']])
    t.strictSame(app.linkServer.getUsers(), [{ username: 'alice', isLinked: true }, { username: 'bob', isLinked: false }])
  })

  t.test('linkServer.unlink(username) unlinks a linked user and keeps its connection open', async t => {
    const { app, alice, bob, events } = await linkedPair(t)
    await app.linkServer.unlink('bob')
    t.strictSame(await bob.take(1), [frames.unlinked('bob')])
    t.strictSame(await alice.take(1), [frames.unlinked('bob')])
    t.strictSame(events, [['unlink', 'bob']])
    t.strictSame(await bob.linked('bob', 5), [
      frames.accepted, frames.joined('alice'), frames.linked('alice'), frames.joined('bob'), frames.linked('bob')
    ])
  })
}
