import { createClient } from '@krmx/client'
import { Type } from '@sinclair/typebox'
import t from 'tap'
import WebSocket from 'ws'
import { urlOf } from '../helpers/clients.js'
import { next } from '../helpers/events.js'
import type { TestBackend } from '../helpers/app.js'

/** The krmx-client tests, on `backend`. */
export default function suite ({ build }: TestBackend): void {
  // The published Krmx client expects a browser-like global WebSocket; Node 20 has none.
  const globals = globalThis as unknown as { WebSocket?: unknown }
  globals.WebSocket ??= WebSocket

  type KrmxClient = ReturnType<typeof createClient>

  function waitFor<T extends unknown[]> (client: KrmxClient, event: string): Promise<T> {
    return new Promise(resolve => {
      (client as unknown as { once: (event: string, listener: (...args: T) => void) => void }).once(event, (...args) => resolve(args))
    })
  }

  t.test('the published @krmx/client connects, links, is rejected, unlinks, relinks, leaves and receives broadcasts', async t => {
    const app = await build(t, { listen: true })
    app.linkServer.on('authenticate', (username, _info, reject) => {
      if (username === 'mallory') {
        reject('mallory is not welcome')
      }
    })
    const received: unknown[] = []
    app.linkServer.on('message', (username, message) => {
      received.push([username, message])
      app.linkServer.broadcast({ type: 'chat/said', payload: { from: username, text: message.payload } })
    })
    const alice = createClient({ logger: false })
    const bob = createClient({ logger: false })
    await alice.connect(urlOf(app))
    await bob.connect(urlOf(app))
    t.equal(alice.getStatus(), 'connected')

    await t.rejects(alice.link('mallory'), new Error('mallory is not welcome'))
    t.equal(alice.getStatus(), 'connected')
    await alice.link('alice')
    t.equal(alice.getStatus(), 'linked')
    t.strictSame(alice.getUsers(), [{ username: 'alice', isLinked: true }])

    const bobJoinedAtAlice = waitFor(alice, 'link')
    await bob.link('bob')
    await bobJoinedAtAlice
    t.strictSame(alice.getUsers(), [{ username: 'alice', isLinked: true }, { username: 'bob', isLinked: true }])
    // The Krmx client lists itself first: it adds itself on krmx/accepted.
    t.strictSame(bob.getUsers(), [{ username: 'bob', isLinked: true }, { username: 'alice', isLinked: true }])

    const aliceHears = waitFor<[unknown]>(alice, 'message')
    const bobHears = waitFor<[unknown]>(bob, 'message')
    bob.send({ type: 'chat/say', payload: 'hello' })
    const said = { type: 'chat/said', payload: { from: 'bob', text: 'hello' } }
    t.strictSame(await aliceHears, [said])
    t.strictSame(await bobHears, [said])
    t.strictSame(received, [['bob', { type: 'chat/say', payload: 'hello' }]])

    const bobUnlinkedAtAlice = waitFor<[string]>(alice, 'unlink')
    await bob.unlink()
    t.strictSame(await bobUnlinkedAtAlice, ['bob'])
    t.equal(bob.getStatus(), 'connected')
    t.strictSame(alice.getUsers(), [{ username: 'alice', isLinked: true }, { username: 'bob', isLinked: false }])

    const bobRelinkedAtAlice = waitFor<[string]>(alice, 'link')
    await bob.link('bob')
    t.strictSame(await bobRelinkedAtAlice, ['bob'])
    t.strictSame(app.linkServer.getUsers(), [{ username: 'alice', isLinked: true }, { username: 'bob', isLinked: true }])

    const bobLeftAtAlice = waitFor<[string]>(alice, 'leave')
    await bob.leave()
    t.strictSame(await bobLeftAtAlice, ['bob'])
    t.strictSame(alice.getUsers(), [{ username: 'alice', isLinked: true }])
    t.strictSame(app.linkServer.getUsers(), [{ username: 'alice', isLinked: true }])

    await bob.disconnect()
    const aliceClosed = waitFor(alice, 'close')
    await app.close()
    await aliceClosed
    t.equal(alice.getStatus(), 'closed')
  })

  t.test('with message schemas the published @krmx/client stays linked after an invalid message, or is unlinked and relinks', async t => {
    const schemas = {
      messages: { 'chat/say': Type.Object({ text: Type.String() }) },
      serverMessages: { 'chat/said': Type.Object({ from: Type.String(), text: Type.String() }) }
    }
    for (const invalidMessage of ['drop', 'unlink'] as const) {
      const app = await build(t, { listen: true, ...schemas, invalidMessage })
      const linkServer = app.linkServer.typed<typeof schemas>()
      const refused = next(app, 'invalidMessage')
      linkServer.handle('chat/say', (from, { text }) => linkServer.broadcast({ type: 'chat/said', payload: { from, text } }))
      const alice = createClient({ logger: false })
      await alice.connect(urlOf(app))
      await alice.link('alice')
      alice.send({ type: 'chat/say', payload: { text: 42 } })
      t.strictSame(await refused, ['alice', { type: 'chat/say', payload: { text: 42 } }, [{ path: '/payload/text', message: 'Expected string' }]])
      if (invalidMessage === 'unlink') {
        await waitFor(alice, 'unlink')
        t.equal(alice.getStatus(), 'connected', `${invalidMessage}: the client knows it is unlinked`)
        await alice.link('alice')
      }
      const heard = waitFor<[unknown]>(alice, 'message')
      alice.send({ type: 'chat/say', payload: { text: 'hello' } })
      t.strictSame(await heard, [{ type: 'chat/said', payload: { from: 'alice', text: 'hello' } }], invalidMessage)
      t.equal(alice.getStatus(), 'linked')
      await alice.unlink()
      await alice.disconnect()
    }
  })
}
