import t from 'tap'
import { buildExample } from '../example/app.js'
import { Client, frames } from './helper.js'

t.test('the example chat server relays chat/say to everyone and chat/typing to the others, answers chat/ping, and logs every event', async t => {
  const logs: Array<Record<string, unknown>> = []
  const stream = { write: (line: string) => { logs.push(JSON.parse(line)) } }
  const app = await buildExample({ logger: { stream } })
  await app.ready()
  const admin = new Client(await app.injectWS('/link'))
  const alice = new Client(await app.injectWS('/link'))
  const bob = new Client(await app.injectWS('/link'))
  t.teardown(async () => {
    for (const client of [admin, alice, bob]) {
      client.ws.terminate()
    }
    await app.close()
  })
  admin.link('admin')
  t.strictSame(await admin.take(1), [frames.rejected('admin is reserved')])
  await alice.linked('alice', 3)
  await bob.linked('bob', 5)
  await alice.take(2)
  alice.send({ type: 'chat/typing' })
  alice.send({ type: 'chat/say', payload: { text: 'hello' } })
  alice.send({ type: 'chat/say', payload: 'not an object' })
  alice.send({ type: 'chat/shout', payload: { text: 'no schema' } })
  t.strictSame(await alice.take(1), [{ type: 'chat/said', payload: { from: 'alice', text: 'hello' } }])
  t.strictSame(await bob.take(2), [
    { type: 'chat/typing', payload: { from: 'alice' } },
    { type: 'chat/said', payload: { from: 'alice', text: 'hello' } }
  ])
  t.strictSame(await alice.settle(), [])
  alice.send({ type: 'chat/ping', payload: { sent: 12.5 } })
  t.strictSame(await alice.take(1), [{ type: 'chat/pong', payload: { sent: 12.5 } }])
  t.strictSame(await bob.settle(), [])
  alice.send({ type: 'krmx/leave' })
  await alice.take(2)
  const appLogs = logs.filter(log => log.name === undefined && log.username !== undefined)
  t.strictSame(appLogs.map(({ msg, username, errors }) => [msg, username, errors]), [
    ['authenticating', 'admin', undefined],
    ['authenticating', 'alice', undefined],
    ['join', 'alice', undefined],
    ['link', 'alice', undefined],
    ['authenticating', 'bob', undefined],
    ['join', 'bob', undefined],
    ['link', 'bob', undefined],
    ['refused', 'alice', [{ path: '/payload', message: 'Expected object' }]],
    ['refused', 'alice', [{ path: '/type', message: 'Unregistered message type' }]],
    ['unlink', 'alice', undefined],
    ['leave', 'alice', undefined]
  ])
  const document = await app.inject('/asyncapi.json')
  t.strictSame(document.json().info, { title: 'Chat', version: '1.0.0' })
})

t.test('the example keeps sessions: a user who missed more than the replay holds gets the whole history after the replay', async t => {
  const app = await buildExample({ logger: false })
  await app.ready()
  const alice = new Client(await app.injectWS('/link'))
  const bob = new Client(await app.injectWS('/link'))
  t.teardown(async () => {
    for (const client of [alice, bob]) {
      client.ws.terminate()
    }
    await app.close()
  })
  await alice.linked('alice', 3)
  await bob.linked('bob', 5)
  await alice.take(2)
  bob.send({ type: 'krmx/unlink' })
  await bob.take(1)
  await alice.take(1)
  const lines = Array.from({ length: 51 }, (_, index) => ({ from: 'alice', text: `line ${index}` }))
  for (const { text } of lines) {
    alice.send({ type: 'chat/say', payload: { text } })
  }
  await alice.take(51)
  bob.link('bob')
  const said = lines.slice(1).map(line => ({ type: 'chat/said', payload: line }))
  t.strictSame(await bob.take(56), [
    frames.accepted, frames.joined('alice'), frames.linked('alice'), frames.joined('bob'), frames.linked('bob'),
    ...said, { type: 'chat/history', payload: { lines } }
  ], 'the 50 it missed, the one dropped counted as lost, so the history follows')
})

t.test('with a Redis URL, two example instances share one user space: a chat/say on one reaches the other', async t => {
  const { RedisServer } = await import('./redis-server.js')
  const redis = await RedisServer.start(t)
  const first = await buildExample({ logger: false }, redis.url)
  const second = await buildExample({ logger: false }, redis.url)
  t.teardown(async () => { await first.close(); await second.close() })
  await first.listen({ port: 0, host: '127.0.0.1' })
  await second.listen({ port: 0, host: '127.0.0.1' })
  const { connect } = await import('./helper.js')
  const alice = await connect(first, '/link')
  await alice.linked('alice', 3)
  const bob = await connect(second, '/link')
  t.strictSame(await bob.linked('bob', 5), [frames.accepted, frames.joined('alice'), frames.linked('alice'), frames.joined('bob'), frames.linked('bob')])
  t.strictSame(await alice.take(2), [frames.joined('bob'), frames.linked('bob')])
  alice.send({ type: 'chat/say', payload: { text: 'across instances' } })
  t.strictSame(await bob.take(1), [{ type: 'chat/said', payload: { from: 'alice', text: 'across instances' } }])
  t.strictSame(await alice.take(1), [{ type: 'chat/said', payload: { from: 'alice', text: 'across instances' } }])
  alice.ws.terminate()
  bob.ws.terminate()
})
