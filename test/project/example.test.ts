import t from 'tap'
import { buildExample } from '../../example/app.js'
import { Client, type Received } from '../helpers/clients.js'
import { frames } from '../helpers/frames.js'

/** The frames with the ids of their chat lines left out, and the ids, which are `<instance>:<line number>`. */
function withoutIds (received: Received[]): { frames: Received[], ids: string[] } {
  const ids: string[] = []
  const strip = (line: { id: string }): unknown => {
    const { id, ...rest } = line
    ids.push(id)
    return rest
  }
  return {
    frames: received.map(frame => frame.type === 'chat/said'
      ? { ...frame, payload: strip(frame.payload as { id: string }) }
      : frame.type === 'chat/history'
        ? { ...frame, payload: { lines: (frame.payload as { lines: Array<{ id: string }> }).lines.map(strip) } }
        : frame),
    ids
  }
}

t.test('the example chat server relays chat/say to its channel and chat/typing to the others there, answers chat/ping, lists the channels, and logs every event', async t => {
  const logs: Array<Record<string, unknown>> = []
  const stream = { write: (line: string) => { logs.push(JSON.parse(line)) } }
  const app = await buildExample({ logger: { stream } })
  await app.ready()
  const admin = new Client(await app.injectWS('/link/general'))
  const alice = new Client(await app.injectWS('/link/general'))
  const bob = new Client(await app.injectWS('/link/general'))
  t.teardown(async () => {
    for (const client of [admin, alice, bob]) {
      client.ws.terminate()
    }
    await app.close()
  })
  admin.requestLink('admin')
  t.strictSame(await admin.take(1), [frames.rejected('admin is reserved')])
  await alice.linked('alice', 3)
  await bob.linked('bob', 5)
  await alice.take(2)
  alice.send({ type: 'chat/typing' })
  alice.send({ type: 'chat/say', payload: { text: 'hello' } })
  alice.send({ type: 'chat/say', payload: 'not an object' })
  alice.send({ type: 'chat/shout', payload: { text: 'no schema' } })
  const said = withoutIds(await alice.take(1))
  t.strictSame(said.frames, [{ type: 'chat/said', payload: { from: 'alice', text: 'hello' } }])
  t.match(said.ids, [/^[0-9a-f-]{36}:1$/])
  t.strictSame(await bob.take(2), [
    { type: 'chat/typing', payload: { from: 'alice' } },
    { type: 'chat/said', payload: { id: said.ids[0], from: 'alice', text: 'hello' } }
  ])
  t.strictSame(await alice.settle(), [])
  alice.send({ type: 'chat/ping', payload: { sent: 12.5 } })
  t.strictSame(await alice.take(1), [{ type: 'chat/pong', payload: { sent: 12.5 } }])
  t.strictSame(await bob.settle(), [])
  const carol = new Client(await app.injectWS('/link/games'))
  t.teardown(() => carol.ws.terminate())
  t.strictSame(await carol.linked('carol', 3), [frames.accepted, frames.joined('carol'), frames.linked('carol')], 'another channel: its own users')
  carol.send({ type: 'chat/say', payload: { text: 'in games' } })
  t.strictSame(withoutIds(await carol.take(1)).frames, [{ type: 'chat/said', payload: { from: 'carol', text: 'in games' } }])
  t.strictSame([await alice.settle(), await bob.settle()], [[], []], 'a line of one channel stays there')
  t.strictSame((await app.inject('/channels')).json(), { channels: ['games', 'general'] })
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
    ['authenticating', 'carol', undefined],
    ['join', 'carol', undefined],
    ['link', 'carol', undefined],
    ['unlink', 'alice', undefined],
    ['leave', 'alice', undefined]
  ])
  const document = await app.inject('/asyncapi.json')
  t.strictSame(document.json().info, { title: 'Chat', version: '1.0.0' })
})

t.test('the example keeps sessions: a user who missed more than the replay holds gets the whole history after the replay', async t => {
  const app = await buildExample({ logger: false })
  await app.ready()
  const alice = new Client(await app.injectWS('/link/general'))
  const bob = new Client(await app.injectWS('/link/general'))
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
  bob.requestLink('bob')
  const said = lines.slice(1).map(line => ({ type: 'chat/said', payload: line }))
  const replayed = withoutIds(await bob.take(56))
  const instance = replayed.ids[0].split(':')[0]
  t.strictSame(replayed.ids, [...lines.slice(1), ...lines].map((_, index) => `${instance}:${index < 50 ? index + 2 : index - 49}`))
  t.strictSame(replayed.frames, [
    frames.accepted, frames.joined('alice'), frames.linked('alice'), frames.joined('bob'), frames.linked('bob'),
    ...said, { type: 'chat/history', payload: { lines } }
  ], 'the 50 it missed, the one dropped counted as lost, so the history follows')
})

t.test('with a Redis URL, two example instances share one user space: a chat/say on one reaches the other', async t => {
  const { RedisServer } = await import('../helpers/redis-server.js')
  const redis = await RedisServer.start(t)
  const first = await buildExample({ logger: false }, redis.url)
  const second = await buildExample({ logger: false }, redis.url)
  t.teardown(async () => { await first.close(); await second.close() })
  await first.listen({ port: 0, host: '127.0.0.1' })
  await second.listen({ port: 0, host: '127.0.0.1' })
  const { connect } = await import('../helpers/clients.js')
  const alice = await connect(first, '/link/general')
  await alice.linked('alice', 3)
  const bob = await connect(second, '/link/general')
  t.strictSame(await bob.linked('bob', 5), [frames.accepted, frames.joined('alice'), frames.linked('alice'), frames.joined('bob'), frames.linked('bob')])
  t.strictSame(await alice.take(2), [frames.joined('bob'), frames.linked('bob')])
  alice.send({ type: 'chat/say', payload: { text: 'across instances' } })
  const [line] = withoutIds(await bob.take(1)).frames
  t.strictSame([line, withoutIds(await alice.take(1)).frames[0]], [
    { type: 'chat/said', payload: { from: 'alice', text: 'across instances' } },
    { type: 'chat/said', payload: { from: 'alice', text: 'across instances' } }
  ])
  alice.ws.terminate()
  bob.ws.terminate()
})
