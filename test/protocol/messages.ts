import t from 'tap'
import { inject } from '../helpers/clients.js'
import type { TestBackend } from '../helpers/app.js'

/** The messages tests, on `backend`. */
export default function suite ({ linkedPair }: TestBackend): void {
  t.test('an application frame from a linked user is a message event, as sent', async t => {
    const { alice, bob, events } = await linkedPair(t)
    alice.send({ type: 'chat/say', payload: { text: 'hi' } })
    alice.send({ type: 'ping' })
    bob.sendRaw({ type: 'game/move', payload: [1, 2], extra: 'kept' })
    await alice.settle()
    await bob.settle()
    t.strictSame(events, [
      ['message', 'alice', { type: 'chat/say', payload: { text: 'hi' } }],
      ['message', 'alice', { type: 'ping' }],
      ['message', 'bob', { type: 'game/move', payload: [1, 2], extra: 'kept' }]
    ])
  })

  t.test('send reaches one linked user; broadcast reaches every linked user but the skipped one', async t => {
    const { app, alice, bob } = await linkedPair(t)
    const idle = await inject(app)
    app.linkServer.send('bob', { type: 'chat/private', payload: 'psst' })
    app.linkServer.broadcast({ type: 'chat/all', payload: 1 })
    app.linkServer.broadcast({ type: 'chat/others' }, 'alice')
    t.strictSame(await alice.take(1), [{ type: 'chat/all', payload: 1 }])
    t.strictSame(await bob.take(3), [{ type: 'chat/private', payload: 'psst' }, { type: 'chat/all', payload: 1 }, { type: 'chat/others' }])
    t.strictSame(await alice.settle(), [])
    t.strictSame(await idle.settle(), [], 'unlinked connections receive no broadcast')
  })

  t.test('send and broadcast refuse misuse with coded errors, before anything is sent', async t => {
    const { app, alice } = await linkedPair(t)
    await app.linkServer.join('carol')
    await alice.take(1)
    t.throws(() => app.linkServer.send('dave', { type: 'x' }), {
      code: 'FST_LINK_UNKNOWN_USER', message: 'Cannot send a message: user "dave" does not exist'
    })
    t.throws(() => app.linkServer.send('carol', { type: 'x' }), {
      code: 'FST_LINK_USER_NOT_LINKED', message: 'Cannot send a message: user "carol" is not linked to a connection'
    })
    t.throws(() => app.linkServer.send('alice', { type: 'krmx/joined', payload: { username: 'mallory' } }), {
      code: 'FST_LINK_RESERVED_TYPE', message: 'Cannot send a message of type "krmx/joined": the "krmx/" prefix is reserved for the protocol'
    })
    t.throws(() => app.linkServer.broadcast({ type: 'krmx/left', payload: { username: 'alice' } }), {
      code: 'FST_LINK_RESERVED_TYPE', message: 'Cannot broadcast a message of type "krmx/left": the "krmx/" prefix is reserved for the protocol'
    })
    for (const bad of [null, 'hello', { payload: 1 }, { type: 3 }, [1]]) {
      t.throws(() => app.linkServer.send('alice', bad as never), { code: 'FST_LINK_INVALID_MESSAGE', message: 'Cannot send: a message must be an object with a string type' })
      t.throws(() => app.linkServer.broadcast(bad as never), {
        code: 'FST_LINK_INVALID_MESSAGE', message: 'Cannot broadcast: a message must be an object with a string type'
      })
    }
    t.strictSame(await alice.settle(), [])
  })
}
