import t from 'tap'
import { inject } from '../helpers/clients.js'
import { record } from '../helpers/events.js'
import { frames } from '../helpers/frames.js'
import type { TestBackend } from '../helpers/app.js'

/** The listeners tests, on `backend`. */
export default function suite ({ build }: TestBackend): void {
  t.test('a listener that throws is logged and never stops the other listeners nor the flow', async t => {
    const logs: Array<{ level: number, msg: string, event?: string, err?: { message: string } }> = []
    const stream = { write: (line: string) => { logs.push(JSON.parse(line)) } }
    const app = await build(t, { fastify: { logger: { level: 'error', stream } } })
    for (const event of ['join', 'link', 'unlink', 'leave', 'message'] as const) {
      app.linkServer.on(event, () => { throw new Error(`${event} listener failed`) })
    }
    const events = record(app)
    const alice = await inject(app)
    t.strictSame(await alice.linked('alice', 3), [frames.accepted, frames.joined('alice'), frames.linked('alice')])
    alice.send({ type: 'chat/say' })
    alice.send({ type: 'krmx/leave' })
    t.strictSame(await alice.take(2), [frames.unlinked('alice'), frames.left('alice')])
    t.strictSame(events, [
      ['join', 'alice'], ['link', 'alice'], ['message', 'alice', { type: 'chat/say' }], ['unlink', 'alice'], ['leave', 'alice']
    ])
    t.strictSame(logs.map(log => [log.level, log.msg, log.event, log.err?.message]), [
      [50, 'a link server listener threw', 'join', 'join listener failed'],
      [50, 'a link server listener threw', 'link', 'link listener failed'],
      [50, 'a link server listener threw', 'message', 'message listener failed'],
      [50, 'a link server listener threw', 'unlink', 'unlink listener failed'],
      [50, 'a link server listener threw', 'leave', 'leave listener failed']
    ])
  })

  t.test('once listeners are called once; off removes a listener', async t => {
    const app = await build(t)
    const calls: string[] = []
    const listener = (username: string): void => { calls.push(`on ${username}`) }
    app.linkServer.once('join', (username) => { calls.push(`once ${username}`) })
    app.linkServer.on('join', listener)
    await app.linkServer.join('alice')
    app.linkServer.off('join', listener)
    await app.linkServer.join('bob')
    t.strictSame(calls, ['once alice', 'on alice'])
    t.equal(app.linkServer.listenerCount('join'), 0)
  })

  t.test('a join listener that kicks the new user: the link completes first, then the user leaves', async t => {
    const app = await build(t)
    const events = record(app)
    const watcher = await inject(app)
    await watcher.linked('watcher', 3)
    app.linkServer.on('join', (username) => {
      if (username === 'mallory') {
        app.linkServer.kick(username)
      }
    })
    const mallory = await inject(app)
    mallory.requestLink('mallory')
    t.strictSame(await mallory.take(7), [
      frames.accepted, frames.joined('watcher'), frames.linked('watcher'), frames.joined('mallory'), frames.linked('mallory'),
      frames.unlinked('mallory'), frames.left('mallory')
    ])
    t.strictSame(await watcher.take(4), [frames.joined('mallory'), frames.linked('mallory'), frames.unlinked('mallory'), frames.left('mallory')])
    t.strictSame(await mallory.settle(), [])
    t.strictSame(events, [
      ['join', 'watcher'], ['link', 'watcher'], ['join', 'mallory'], ['link', 'mallory'], ['unlink', 'mallory'], ['leave', 'mallory']
    ])
    t.strictSame(app.linkServer.getUsers(), [{ username: 'watcher', isLinked: true }])
  })

  t.test('an unlink listener that kicks the user during a leave: the leave happens once', async t => {
    const app = await build(t)
    const alice = await inject(app)
    await alice.linked('alice', 3)
    app.linkServer.on('unlink', (username) => app.linkServer.kick(username))
    const events = record(app)
    alice.send({ type: 'krmx/leave' })
    t.strictSame(await alice.take(2), [frames.unlinked('alice'), frames.left('alice')])
    t.strictSame(await alice.settle(), [])
    t.strictSame(events, [['unlink', 'alice'], ['leave', 'alice']])
  })

  t.test('send, broadcast, unlink and kick called from inside listeners', async t => {
    const app = await build(t)
    app.linkServer.on('link', (username) => {
      app.linkServer.send(username, { type: 'welcome', payload: username })
      app.linkServer.broadcast({ type: 'arrived', payload: username }, username)
    })
    app.linkServer.on('message', (username, message) => {
      if (message.type === 'bye') {
        app.linkServer.unlink(username)
      }
      if (message.type === 'quit') {
        app.linkServer.kick(username)
      }
    })
    const alice = await inject(app)
    t.strictSame(await alice.linked('alice', 4), [
      frames.accepted, frames.joined('alice'), frames.linked('alice'), { type: 'welcome', payload: 'alice' }
    ])
    const bob = await inject(app)
    t.strictSame(await bob.linked('bob', 6), [
      frames.accepted, frames.joined('alice'), frames.linked('alice'), frames.joined('bob'), frames.linked('bob'),
      { type: 'welcome', payload: 'bob' }
    ])
    t.strictSame(await alice.take(3), [frames.joined('bob'), frames.linked('bob'), { type: 'arrived', payload: 'bob' }])
    bob.send({ type: 'bye' })
    t.strictSame(await alice.take(1), [frames.unlinked('bob')])
    alice.send({ type: 'quit' })
    t.strictSame(await alice.take(2), [frames.unlinked('alice'), frames.left('alice')])
    t.strictSame(app.linkServer.getUsers(), [{ username: 'bob', isLinked: false }])
  })

  t.test('a single message listener that throws is logged; the handlers of the type still run', async t => {
    const logs: Array<{ msg: string, event?: string, err?: { message: string } }> = []
    const stream = { write: (line: string) => { logs.push(JSON.parse(line)) } }
    const app = await build(t, { fastify: { logger: { level: 'error', stream } } })
    const handled: unknown[] = []
    app.linkServer.on('message', () => { throw new Error('the only listener failed') })
    app.linkServer.handle('chat/say', (username, payload) => { handled.push([username, payload]) })
    const alice = await inject(app)
    await alice.linked('alice', 3)
    alice.send({ type: 'chat/say', payload: 'still handled' })
    await alice.settle()
    t.strictSame(handled, [['alice', 'still handled']])
    t.strictSame(logs.map(log => [log.msg, log.event, log.err?.message]), [['a link server listener threw', 'message', 'the only listener failed']])
  })
}
