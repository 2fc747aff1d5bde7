import { execFile } from 'node:child_process'
import { once } from 'node:events'
import { fileURLToPath } from 'node:url'
import { Type } from '@sinclair/typebox'
import t from 'tap'
import { build } from '../helpers/app.js'
import { connect, unresponsive } from '../helpers/clients.js'
import { next, record } from '../helpers/events.js'
import { frames, version } from '../helpers/frames.js'
import { clientFrame } from '../../support/raw-client.js'
import { timerCount } from '../helpers/waits.js'

const eventNames = ['listen', 'close', 'authenticate', 'join', 'link', 'unlink', 'leave', 'message', 'invalidMessage'] as const

t.test('a socket destroyed in the middle of a frame unlinks its user; the others are told and keep being served', async t => {
  const app = await build(t, { listen: true })
  const bob = await connect(app)
  await bob.linked('bob', 3)
  const { port } = app.server.address() as { port: number }
  const raw = await unresponsive(port)
  const linked = next(app, 'link')
  raw.write(clientFrame(JSON.stringify({ type: 'krmx/link', payload: { username: 'alice', version } })))
  t.strictSame(await linked, ['alice', { data: undefined, replay: undefined }])
  t.strictSame(await bob.take(2), [frames.joined('alice'), frames.linked('alice')])
  const unlinked = next(app, 'unlink')
  const half = clientFrame(JSON.stringify({ type: 'chat/say', payload: { text: 'cut short' } }))
  raw.write(half.subarray(0, half.length / 2))
  raw.destroy()
  t.strictSame(await unlinked, ['alice'])
  t.strictSame(await bob.take(1), [frames.unlinked('alice')])
  app.linkServer.broadcast({ type: 'still/here' })
  t.strictSame(await bob.take(1), [{ type: 'still/here' }])
  t.strictSame(app.linkServer.getStats(), { connections: 1, users: 2, rooms: 1, linkedUsers: 1, invalidMessages: 0 })
})

t.test('listeners and handlers that throw in every event never break the flow, and the server still closes cleanly', async t => {
  const logs: Array<{ msg: string, event?: string, type?: string, err: { message: string } }> = []
  const stream = { write: (line: string) => { logs.push(JSON.parse(line)) } }
  const throwing = eventNames.filter(event => event !== 'authenticate') // a throwing authenticate listener rejects the link, by design
  const app = await build(t, {
    listen: true,
    fastify: { logger: { level: 'error', stream } },
    messages: { 'chat/say': Type.Object({ text: Type.String() }) },
    setup: app => {
      for (const event of throwing) {
        app.linkServer.on(event, () => { throw new Error(`${event} failed`) })
      }
      app.linkServer.handle('chat/say', () => { throw new Error('handler failed') })
    }
  })
  const events = record(app)
  const alice = await connect(app)
  t.strictSame(await alice.linked('alice', 3), [frames.accepted, frames.joined('alice'), frames.linked('alice')])
  const bob = await connect(app)
  await bob.linked('bob', 5)
  await alice.take(2)
  alice.send({ type: 'chat/say', payload: { text: 'hi' } })
  alice.send({ type: 'chat/say', payload: { text: 1 } })
  bob.send({ type: 'krmx/unlink' })
  t.strictSame(await alice.take(1), [frames.unlinked('bob')])
  alice.send({ type: 'krmx/leave' })
  t.strictSame(await alice.take(2), [frames.unlinked('alice'), frames.left('alice')])
  await app.close()
  t.strictSame(events, [
    ['join', 'alice'], ['link', 'alice'], ['join', 'bob'], ['link', 'bob'],
    ['message', 'alice', { type: 'chat/say', payload: { text: 'hi' } }],
    ['invalidMessage', 'alice', { type: 'chat/say', payload: { text: 1 } }, [{ path: '/payload/text', message: 'Expected string' }]],
    ['unlink', 'bob'], ['unlink', 'alice'], ['leave', 'alice'], ['leave', 'bob'], ['close']
  ])
  t.strictSame(logs.map(({ msg, event, type, err }) => [msg, event, type, err.message]), [
    ['a link server listener threw', 'listen', undefined, 'listen failed'],
    ['a link server listener threw', 'join', undefined, 'join failed'],
    ['a link server listener threw', 'link', undefined, 'link failed'],
    ['a link server listener threw', 'join', undefined, 'join failed'],
    ['a link server listener threw', 'link', undefined, 'link failed'],
    ['a link server listener threw', 'message', undefined, 'message failed'],
    ['a message handler threw', 'message', 'chat/say', 'handler failed'],
    ['a link server listener threw', 'invalidMessage', undefined, 'invalidMessage failed'],
    ['a link server listener threw', 'unlink', undefined, 'unlink failed'],
    ['a link server listener threw', 'unlink', undefined, 'unlink failed'],
    ['a link server listener threw', 'leave', undefined, 'leave failed'],
    ['a link server listener threw', 'leave', undefined, 'leave failed'],
    ['a link server listener threw', 'close', undefined, 'close failed']
  ])
  t.strictSame(eventNames.map(event => app.linkServer.listenerCount(event)), eventNames.map(() => 0), 'every listener is removed')
})

t.test('close under heavy traffic and with authentications pending leaves no connection, timer or listener behind', async t => {
  const timersBefore = timerCount()
  const app = await build(t, { listen: true, rateLimit: false, linkTimeoutMilliseconds: 60_000, pingIntervalMilliseconds: 1_000 })
  app.linkServer.on('authenticate', (username, _info, _reject, markAsync) => {
    if (username.startsWith('pending')) {
      markAsync(() => new Promise(() => {}))
    }
  })
  let received = 0
  const heavy = new Promise<void>(resolve => {
    app.linkServer.on('message', () => { if (++received === 1_000) resolve() })
  })
  const linked = await Promise.all(Array.from({ length: 10 }, async (_, index) => {
    const client = await connect(app)
    await client.linked(`user${index}`, 3 + 2 * index)
    return client
  }))
  const pending = await Promise.all(Array.from({ length: 3 }, async (_, index) => {
    const client = await connect(app)
    client.requestLink(`pending${index}`)
    return client
  }))
  const idle = await connect(app)
  for (const client of linked) {
    const flood = (): void => {
      if (client.ws.readyState === client.ws.OPEN) {
        client.send({ type: 'chat/say', payload: { text: 'traffic' } })
        setImmediate(flood)
      }
    }
    flood()
  }
  await heavy
  const closes = [...linked, ...pending, idle].map(client => client.closed())
  await app.close()
  t.strictSame(await Promise.all(closes), Array(14).fill({ code: 1001, reason: 'server closing' }))
  t.strictSame(app.linkServer.getStats(), { connections: 0, users: 0, rooms: 1, linkedUsers: 0, invalidMessages: 0 })
  t.equal(timerCount(), timersBefore, 'no link timer, heartbeat, authentication timer or close grace timer is left')
  t.strictSame(eventNames.map(event => app.linkServer.listenerCount(event)), eventNames.map(() => 0))
  t.strictSame(pending.map(client => client.unread()), [[], [], []], 'a pending link was never answered')
})

t.test('a process that closes its server under traffic, with authentications pending, exits by itself', async t => {
  const fixture = fileURLToPath(new URL('../fixtures/close-under-load.ts', import.meta.url))
  // With the TypeScript loader of this test's own process, so that tap maps the child's coverage onto the sources too.
  const child = execFile(process.execPath, [...process.execArgv, fixture], { timeout: 30_000 })
  let stdout = ''
  child.stdout?.on('data', (chunk: string) => { stdout += chunk })
  const [code, signal] = await once(child, 'exit') as [number | null, string | null]
  t.strictSame({ code, signal }, { code: 0, signal: null }, 'exited on its own, not killed by the 30 s timeout')
  t.strictSame(JSON.parse(stdout), {
    codes: [1001],
    clients: 25,
    status: 'closed',
    stats: { connections: 0, users: 0, rooms: 1, linkedUsers: 0, invalidMessages: 0 }
  })
})
