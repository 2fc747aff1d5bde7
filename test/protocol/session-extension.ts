import t from 'tap'
import { inject, type Client } from '../helpers/clients.js'
import { next } from '../helpers/events.js'
import { frames, version } from '../helpers/frames.js'
import type { TestBackend } from '../helpers/app.js'

/** The session extension of the link request (docs/protocol.md#the-session-extension), on `backend`. */
export default function suite ({ build }: TestBackend): void {
  const say = (text: string): { type: string, payload: string } => ({ type: 'note/say', payload: text })
  const numbered = (seq: number, text: string): { seq: number, type: string, payload: string } => ({ seq, ...say(text) })
  const accepted = (user: number, last?: number): unknown => ({ type: 'krmx/accepted', payload: { session: last === undefined ? { user } : { user, last } } })

  /** Sends a link request that asks for the session extension. */
  function linkWithSession (client: Client, username: string, session: unknown): void {
    client.sendRaw({ type: 'krmx/link', payload: { username, version, session } })
  }

  /** The pongs of `client` are lost from now on: what it receives is not confirmed. */
  function silence (client: Client): void {
    client.ws.pong = () => {}
  }

  /** The join order the server gave a user, read from the accepted frame of a session link. */
  function userOf (frame: unknown): number {
    return (frame as { payload: { session: { user: number } } }).payload.session.user
  }

  t.test('session extension, replay off: accepted names the user; krmx/ping is answered with krmx/pong; messages are not numbered', async t => {
    const app = await build(t)
    const alice = await inject(app)
    linkWithSession(alice, 'alice', {})
    const [answer, ...list] = await alice.take(3)
    const user = userOf(answer)
    t.strictSame([answer, ...list], [accepted(user), frames.joined('alice'), frames.linked('alice')])
    t.ok(Number.isInteger(user) && user > 0, `a join order: ${user}`)
    alice.send({ type: 'krmx/ping' })
    t.strictSame(await alice.take(1), [{ type: 'krmx/pong' }])
    app.linkServer.send('alice', say('plain'))
    t.strictSame(await alice.take(1), [say('plain')])
    const bob = await inject(app)
    await bob.linked('bob', 5)
    const unlinked = next(app, 'unlink')
    bob.send({ type: 'krmx/ping' })
    t.strictSame(await unlinked, ['bob'], 'without the extension krmx/ping is an unknown krmx/ type, as before')
    t.strictSame(await bob.take(1), [frames.unlinked('bob')])
  })

  t.test('session extension: a malformed session object is an invalid link request', async t => {
    const app = await build(t)
    const alice = await inject(app)
    for (const session of [{ last: -1 }, { user: 1.5 }, { last: '3' }, 'yes', null]) {
      linkWithSession(alice, 'alice', session)
    }
    t.strictSame(await alice.take(5), Array(5).fill(frames.rejected('invalid link request')))
  })

  t.test('session extension with replay: messages are numbered; a relink names its last one and gets only what follows, however much was confirmed', async t => {
    const app = await build(t, { replay: {} })
    const alice = await inject(app)
    linkWithSession(alice, 'alice', {})
    const [answer] = await alice.take(3)
    const user = userOf(answer)
    t.strictSame(answer, accepted(user, 0))
    app.linkServer.send('alice', say('one'))
    app.linkServer.broadcast(say('two'))
    t.strictSame(await alice.take(2), [numbered(1, 'one'), numbered(2, 'two')])
    await alice.confirmed()
    silence(alice)
    app.linkServer.send('alice', say('three'))
    app.linkServer.send('alice', say('four'))
    t.strictSame(await alice.take(2), [numbered(3, 'three'), numbered(4, 'four')], 'received, not confirmed')
    alice.close()
    await next(app, 'unlink')
    app.linkServer.send('alice', say('five'))
    const again = await inject(app)
    silence(again)
    const linked = next(app, 'link')
    linkWithSession(again, 'alice', { user, last: 4 })
    t.strictSame(await linked, ['alice', { data: undefined, replay: { replayed: 1, lost: 0 } }], 'three and four are not replayed: the client has them')
    t.strictSame(await again.take(4), [accepted(user, 4), frames.joined('alice'), frames.linked('alice'), numbered(5, 'five')])
    app.linkServer.send('alice', say('six'))
    const ownSeq = { type: 'note/say', payload: 'its own seq', seq: 'mine' }
    app.linkServer.send('alice', ownSeq)
    t.strictSame(await again.take(2), [numbered(6, 'six'), numbered(7, 'its own seq')], 'the server\'s number wins over a seq of the message')
    again.close()
    await next(app, 'unlink')
    const stock = await inject(app)
    silence(stock)
    const stockLinked = next(app, 'link')
    stock.requestLink('alice')
    t.strictSame(await stockLinked, ['alice', { data: undefined, replay: { replayed: 5, lost: 0 } }], 'a stock client gets every unconfirmed message')
    t.strictSame(await stock.take(8), [frames.accepted, frames.joined('alice'), frames.linked('alice'), say('three'), say('four'), say('five'), say('six'), ownSeq],
      'as they were sent')
    stock.close()
    await next(app, 'unlink')
    const noLast = await inject(app)
    linkWithSession(noLast, 'alice', { user })
    t.strictSame(await noLast.take(8), [accepted(user, 2), frames.joined('alice'), frames.linked('alice'),
      numbered(3, 'three'), numbered(4, 'four'), numbered(5, 'five'), numbered(6, 'six'), numbered(7, 'its own seq')], 'a user without a last number has none')
  })

  t.test('session extension with replay: a number of another life of the user, or beyond the last message, is ignored; a gap is counted as lost', async t => {
    const app = await build(t, { replay: { maxMessages: 2 } })
    const alice = await inject(app)
    linkWithSession(alice, 'alice', {})
    const user = userOf((await alice.take(3))[0])
    alice.send({ type: 'krmx/leave' })
    await next(app, 'leave')
    await alice.take(2)
    await app.linkServer.join('alice')
    for (const text of ['a', 'b', 'c']) {
      app.linkServer.send('alice', say(text))
    }
    const linked = next(app, 'link')
    linkWithSession(alice, 'alice', { user, last: 2 })
    const [answer, ...rest] = await alice.take(5)
    const newUser = userOf(answer)
    t.not(newUser, user, 'a new life of the user has another join order')
    t.strictSame([answer, ...rest], [accepted(newUser, 1), frames.joined('alice'), frames.linked('alice'), numbered(2, 'b'), numbered(3, 'c')],
      'the number 2 of the old life does not skip message 2 of this one')
    t.strictSame(await linked, ['alice', { data: undefined, replay: { replayed: 2, lost: 1 } }])
    await alice.confirmed()
    alice.close()
    await next(app, 'unlink')
    for (const text of ['d', 'e', 'f']) {
      app.linkServer.send('alice', say(text))
    }
    const beyond = await inject(app)
    silence(beyond)
    const relinked = next(app, 'link')
    linkWithSession(beyond, 'alice', { user: newUser, last: 99 })
    t.strictSame(await relinked, ['alice', { data: undefined, replay: { replayed: 2, lost: 1 } }], 'not confirmed: c, d, e, f; kept: e, f')
    t.strictSame(await beyond.take(5), [accepted(newUser, 4), frames.joined('alice'), frames.linked('alice'), numbered(5, 'e'), numbered(6, 'f')])
    beyond.close()
    await next(app, 'unlink')
    for (const text of ['g', 'h', 'i']) {
      app.linkServer.send('alice', say(text))
    }
    const behind = await inject(app)
    const gap = next(app, 'link')
    linkWithSession(behind, 'alice', { user: newUser, last: 5 })
    t.strictSame(await gap, ['alice', { data: undefined, replay: { replayed: 2, lost: 2 } }], 'it had 5; 6 and 7 were dropped by the bound')
    t.strictSame(await behind.take(5), [accepted(newUser, 7), frames.joined('alice'), frames.linked('alice'), numbered(8, 'h'), numbered(9, 'i')])
  })
}
