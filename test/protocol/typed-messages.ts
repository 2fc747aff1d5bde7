import { Type } from '@sinclair/typebox'
import t from 'tap'
import { type BuildOptions } from '../helpers/app.js'
import { inject } from '../helpers/clients.js'
import { frames } from '../helpers/frames.js'
import type { TestBackend } from '../helpers/app.js'

/** The typed-messages tests, on `backend`. */
export default function suite ({ build, linkedPair }: TestBackend): void {
  const messages = {
    'chat/say': Type.Object({ text: Type.String({ minLength: 1, maxLength: 500 }) }),
    'chat/typing': Type.Undefined(),
    'game/move': Type.Object({ x: Type.Integer(), y: Type.Integer() }),
    'game/path': Type.Array(Type.Integer())
  }
  const serverMessages = {
    'chat/said': Type.Object({ from: Type.String(), text: Type.String() }),
    'chat/cleared': Type.Undefined()
  }

  type Log = Record<string, unknown>

  /** A linked pair whose logs at warn and above are kept. */
  async function loggedPair (t: Parameters<typeof build>[0], options: BuildOptions) {
    const logs: Log[] = []
    const stream = { write: (line: string) => { logs.push(JSON.parse(line)) } }
    const pair = await linkedPair(t, { ...options, fastify: { logger: { level: 'warn', stream } } })
    return { ...pair, logs }
  }

  t.test('a valid message of a registered type is a message event; an invalid one is dropped, logged and counted', async t => {
    const { app, alice, bob, events, logs } = await loggedPair(t, { messages })
    alice.send({ type: 'chat/say', payload: { text: 'hi' } })
    alice.send({ type: 'chat/say', payload: { text: '' } })
    alice.send({ type: 'chat/say' })
    alice.send({ type: 'chat/typing' })
    alice.send({ type: 'chat/typing', payload: null })
    alice.send({ type: 'game/move', payload: { x: 1, y: 2.5 } })
    alice.send({ type: 'game/move', payload: { x: 1, y: 2 } })
    alice.send({ type: 'other/type', payload: [1, 'two'] })
    t.strictSame(await alice.settle(), [], 'no krmx/rejected: a Krmx client would read it as a failed link')
    t.strictSame(await bob.settle(), [])
    t.strictSame(events, [
      ['message', 'alice', { type: 'chat/say', payload: { text: 'hi' } }],
      ['invalidMessage', 'alice', { type: 'chat/say', payload: { text: '' } }, [
        { path: '/payload/text', message: 'Expected string length greater or equal to 1' }
      ]],
      ['invalidMessage', 'alice', { type: 'chat/say' }, [
        { path: '/payload', message: 'Expected object' }
      ]],
      ['message', 'alice', { type: 'chat/typing' }],
      ['invalidMessage', 'alice', { type: 'chat/typing', payload: null }, [
        { path: '/payload', message: 'Expected undefined' }
      ]],
      ['invalidMessage', 'alice', { type: 'game/move', payload: { x: 1, y: 2.5 } }, [
        { path: '/payload/y', message: 'Expected integer' }
      ]],
      ['message', 'alice', { type: 'game/move', payload: { x: 1, y: 2 } }],
      ['message', 'alice', { type: 'other/type', payload: [1, 'two'] }]
    ])
    t.strictSame(logs.map(({ level, msg, username, type, error }) => ({ level, msg, username, type, error })), [
      { level: 40, msg: 'user sent an invalid message; it is dropped', username: 'alice', type: 'chat/say', error: { path: '/payload/text', message: 'Expected string length greater or equal to 1' } },
      { level: 40, msg: 'user sent an invalid message; it is dropped', username: 'alice', type: 'chat/say', error: { path: '/payload', message: 'Expected object' } },
      { level: 40, msg: 'user sent an invalid message; it is dropped', username: 'alice', type: 'chat/typing', error: { path: '/payload', message: 'Expected undefined' } },
      { level: 40, msg: 'user sent an invalid message; it is dropped', username: 'alice', type: 'game/move', error: { path: '/payload/y', message: 'Expected integer' } }
    ])
    t.strictSame(app.linkServer.getStats(), { connections: 2, users: 2, rooms: 1, linkedUsers: 2, invalidMessages: 4 })
  })

  t.test('at most ten errors of one message are reported', async t => {
    const { alice, events } = await linkedPair(t, { messages })
    const path = Array.from({ length: 25 }, (_, index) => `step ${index}`)
    alice.send({ type: 'game/path', payload: path })
    await alice.settle()
    t.strictSame(events, [
      ['invalidMessage', 'alice', { type: 'game/path', payload: path }, Array.from({ length: 10 }, (_, index) => ({
        path: `/payload/${index}`, message: 'Expected integer'
      }))]
    ])
  })

  t.test('invalidMessage "unlink" unlinks the sender after the invalidMessage event; the connection may link again', async t => {
    const { app, alice, bob, events } = await linkedPair(t, { messages, invalidMessage: 'unlink' })
    alice.send({ type: 'game/move', payload: { x: '1', y: 2 } })
    alice.send({ type: 'chat/say', payload: { text: 'lost: alice is unlinked' } })
    t.strictSame(await alice.take(2), [frames.unlinked('alice'), frames.rejected('unlinked connection')])
    t.strictSame(await bob.take(1), [frames.unlinked('alice')])
    t.strictSame(events, [
      ['invalidMessage', 'alice', { type: 'game/move', payload: { x: '1', y: 2 } }, [{ path: '/payload/x', message: 'Expected integer' }]],
      ['unlink', 'alice']
    ])
    t.strictSame(await alice.linked('alice', 5), [
      frames.accepted, frames.joined('alice'), frames.linked('alice'), frames.joined('bob'), frames.linked('bob')
    ])
    t.strictSame(app.linkServer.getStats(), { connections: 2, users: 2, rooms: 1, linkedUsers: 2, invalidMessages: 1 })
  })

  t.test('an invalidMessage listener may kick the sender itself; it is not unlinked twice', async t => {
    const { app, alice, bob, events } = await linkedPair(t, { messages, invalidMessage: 'unlink' })
    app.linkServer.on('invalidMessage', username => app.linkServer.kick(username))
    alice.send({ type: 'chat/say', payload: {} })
    t.strictSame(await alice.take(2), [frames.unlinked('alice'), frames.left('alice')])
    t.strictSame(await bob.take(2), [frames.unlinked('alice'), frames.left('alice')])
    t.strictSame(events, [
      ['invalidMessage', 'alice', { type: 'chat/say', payload: {} }, [
        { path: '/payload/text', message: 'Expected required property' },
        { path: '/payload/text', message: 'Expected string' }
      ]],
      ['unlink', 'alice'],
      ['leave', 'alice']
    ])
  })

  t.test('strictMessages refuses types without a schema, "__proto__" and "constructor" included', async t => {
    const { alice, events } = await linkedPair(t, { messages, strictMessages: true })
    alice.send({ type: 'other/type', payload: 1 })
    alice.send({ type: '__proto__', payload: { polluted: true } })
    alice.send({ type: 'constructor' })
    alice.send({ type: 'chat/typing' })
    t.strictSame(await alice.settle(), [])
    const unregistered = [{ path: '/type', message: 'Unregistered message type' }]
    t.strictSame(events, [
      ['invalidMessage', 'alice', { type: 'other/type', payload: 1 }, unregistered],
      ['invalidMessage', 'alice', { type: '__proto__', payload: { polluted: true } }, unregistered],
      ['invalidMessage', 'alice', { type: 'constructor' }, unregistered],
      ['message', 'alice', { type: 'chat/typing' }]
    ])
    t.equal(({} as Record<string, unknown>).polluted, undefined)
  })

  t.test('strictMessages without any schema refuses every application message', async t => {
    const { alice, events } = await linkedPair(t, { strictMessages: true, invalidMessage: 'unlink' })
    alice.send({ type: 'chat/say', payload: { text: 'hi' } })
    t.strictSame(await alice.take(1), [frames.unlinked('alice')])
    t.strictSame(events, [
      ['invalidMessage', 'alice', { type: 'chat/say', payload: { text: 'hi' } }, [{ path: '/type', message: 'Unregistered message type' }]],
      ['unlink', 'alice']
    ])
  })

  t.test('the protocol frames are still checked by their own schemas, before any message schema', async t => {
    const { app, alice, bob, events } = await linkedPair(t, { messages, strictMessages: true })
    const idle = await inject(app)
    idle.send({ type: 'krmx/link', payload: { username: 'carol' } })
    idle.send({ type: 'chat/say', payload: { text: 'hi' } })
    t.strictSame(await idle.take(2), [frames.rejected('invalid link request'), frames.rejected('unlinked connection')])
    bob.send({ type: 'krmx/hello', payload: { text: 'hi' } })
    alice.send({ type: 'krmx/unlink' })
    t.strictSame(await alice.take(2), [frames.unlinked('bob'), frames.unlinked('alice')])
    t.strictSame(events, [['unlink', 'bob'], ['unlink', 'alice']])
    t.strictSame(app.linkServer.getStats(), { connections: 3, users: 2, rooms: 1, linkedUsers: 0, invalidMessages: 0 })
  })

  t.test('handlers run for the valid messages of their type, in the order they were added, after the message listeners', async t => {
    const { app, alice, bob } = await linkedPair(t, { messages })
    const calls: unknown[][] = []
    app.linkServer.on('message', (username, message) => { calls.push(['message', username, message]) })
    const returned = app.linkServer
      .handle('chat/say', (username, payload) => { calls.push(['first', username, payload]) })
      .handle('game/move', (username, payload) => { calls.push(['move', username, payload]) })
      .handle('chat/say', (username, payload) => { calls.push(['second', username, payload]) })
      .handle('other/type', (username, payload) => { calls.push(['untyped', username, payload]) })
    t.equal(returned, app.linkServer)
    alice.send({ type: 'chat/say', payload: { text: 'hi' } })
    alice.send({ type: 'chat/say', payload: { text: 7 } })
    bob.send({ type: 'game/move', payload: { x: 3, y: 4 } })
    bob.send({ type: 'other/type', payload: 'raw' })
    bob.send({ type: 'chat/typing' })
    await alice.settle()
    await bob.settle()
    t.strictSame(calls, [
      ['message', 'alice', { type: 'chat/say', payload: { text: 'hi' } }],
      ['first', 'alice', { text: 'hi' }],
      ['second', 'alice', { text: 'hi' }],
      ['message', 'bob', { type: 'game/move', payload: { x: 3, y: 4 } }],
      ['move', 'bob', { x: 3, y: 4 }],
      ['message', 'bob', { type: 'other/type', payload: 'raw' }],
      ['untyped', 'bob', 'raw'],
      ['message', 'bob', { type: 'chat/typing' }]
    ])
  })

  t.test('a handler that throws is logged like a throwing listener and never stops the other handlers', async t => {
    const { app, alice, logs } = await loggedPair(t, { messages })
    const calls: string[] = []
    const linkServer = app.linkServer.typed<{ messages: typeof messages }>()
    t.equal(linkServer, app.linkServer, 'typed() is the same link server')
    linkServer.handle('chat/say', () => { throw new Error('handler failed') })
    linkServer.handle('chat/say', (username, payload) => { calls.push(`${username}: ${payload.text}`) })
    alice.send({ type: 'chat/say', payload: { text: 'still handled' } })
    await alice.settle()
    t.strictSame(calls, ['alice: still handled'])
    t.strictSame(logs.map(({ level, msg, event, type, err }) => ({ level, msg, event, type, err: (err as { message: string }).message })), [
      { level: 50, msg: 'a message handler threw', event: 'message', type: 'chat/say', err: 'handler failed' }
    ])
  })

  t.test('handle refuses a reserved type, a type strictMessages would refuse, a type that is not a string and a handler that is not a function', async t => {
    const app = await build(t, { messages, strictMessages: true })
    const handler = (): void => {}
    t.throws(() => app.linkServer.handle('krmx/link' as never, handler), {
      code: 'FST_LINK_RESERVED_TYPE', message: 'Cannot handle a message of type "krmx/link": the "krmx/" prefix is reserved for the protocol'
    })
    t.throws(() => app.linkServer.handle('other/type' as never, handler), {
      code: 'FST_LINK_UNKNOWN_MESSAGE_TYPE', message: 'Cannot handle a message of type "other/type": it has no schema in messages'
    })
    t.throws(() => app.linkServer.handle(42 as never, handler), {
      code: 'FST_LINK_INVALID_HANDLER', message: 'Cannot handle messages of type "42": the type must be a string'
    })
    t.throws(() => app.linkServer.handle('chat/say', 'handler' as never), {
      code: 'FST_LINK_INVALID_HANDLER', message: 'Cannot handle messages of type "chat/say": the handler must be a function'
    })
    const unstrict = await build(t)
    t.equal(unstrict.linkServer.handle('anything', handler), unstrict.linkServer, 'without strictMessages any type may be handled')
  })

  t.test('handlers are removed when the server closes', async t => {
    const app = await build(t, { messages })
    const calls: string[] = []
    app.linkServer.handle('chat/typing', username => { calls.push(username) })
    const alice = await inject(app)
    await alice.linked('alice', 3)
    alice.send({ type: 'chat/typing' })
    await alice.settle()
    await app.close()
    t.strictSame(calls, ['alice'])
    t.equal(app.linkServer.getStatus(), 'closed')
  })

  t.test('with serverMessages, send and broadcast check the payload and the type before anything is sent', async t => {
    const { app, alice, bob } = await linkedPair(t, { messages, serverMessages })
    app.linkServer.send('alice', { type: 'chat/said', payload: { from: 'bob', text: 'hi' } })
    app.linkServer.broadcast({ type: 'chat/cleared' }, 'bob')
    t.strictSame(await alice.take(2), [{ type: 'chat/said', payload: { from: 'bob', text: 'hi' } }, { type: 'chat/cleared' }])
    t.throws(() => app.linkServer.send('alice', { type: 'chat/said', payload: { from: 'bob', text: 5 } } as never), {
      code: 'FST_LINK_INVALID_PAYLOAD', message: 'Cannot send a message of type "chat/said": /payload/text: Expected string'
    })
    t.throws(() => app.linkServer.broadcast({ type: 'chat/said' } as never), {
      code: 'FST_LINK_INVALID_PAYLOAD', message: 'Cannot broadcast a message of type "chat/said": /payload: Expected object'
    })
    t.throws(() => app.linkServer.broadcast({ type: 'chat/cleared', payload: 'all' } as never), {
      code: 'FST_LINK_INVALID_PAYLOAD', message: 'Cannot broadcast a message of type "chat/cleared": /payload: Expected undefined'
    })
    t.throws(() => app.linkServer.send('bob', { type: 'chat/say', payload: { text: 'not a server type' } } as never), {
      code: 'FST_LINK_UNKNOWN_MESSAGE_TYPE', message: 'Cannot send a message of type "chat/say": it has no schema in serverMessages'
    })
    t.throws(() => app.linkServer.send('bob', { type: 'krmx/left', payload: { username: 'alice' } } as never), {
      code: 'FST_LINK_RESERVED_TYPE', message: 'Cannot send a message of type "krmx/left": the "krmx/" prefix is reserved for the protocol'
    })
    t.strictSame(await alice.settle(), [])
    t.strictSame(await bob.settle(), [])
  })
}
