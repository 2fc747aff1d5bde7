import Fastify from 'fastify'
import t, { type Test } from 'tap'
import fastifyLinkServer from '../index.js'
import { eventually } from './helper.js'
import { LinkRejectedError, LinkTestClient, linkUser, testClientVersion } from '../lib/testing.js'

// The test kit (fastify-link-server/testing), as an application's tests use it: over injectWS, no port.

async function chatApp (t: Test) {
  const app = Fastify()
  await app.register(fastifyLinkServer, { path: '/ws', pingIntervalMilliseconds: 0 })
  app.linkServer.on('authenticate', (_username, info, reject) => {
    if (info.auth !== 'secret') {
      reject('wrong password')
    }
  })
  app.linkServer.on('message', (username, message) => {
    app.linkServer.broadcast({ type: 'chat/said', payload: { username, text: (message.payload as { text: string }).text } })
  })
  await app.ready()
  t.teardown(() => app.close())
  return app
}

t.test('two users link, see each other, chat; one goes away and the other sees it unlinked', async t => {
  const app = await chatApp(t)
  const alice = await linkUser(app, 'alice', { auth: 'secret', path: '/ws' })
  t.strictSame(alice.users(), [{ username: 'alice', isLinked: true }])
  const bob = await LinkTestClient.open(app, '/ws')
  t.strictSame(await bob.link('bob', { auth: 'secret' }), [
    { type: 'krmx/accepted' },
    { type: 'krmx/joined', payload: { username: 'alice' } },
    { type: 'krmx/linked', payload: { username: 'alice' } },
    { type: 'krmx/joined', payload: { username: 'bob' } },
    { type: 'krmx/linked', payload: { username: 'bob' } }
  ])
  t.strictSame(await alice.next('krmx/linked'), { type: 'krmx/linked', payload: { username: 'bob' } })
  t.strictSame(alice.users(), [{ username: 'alice', isLinked: true }, { username: 'bob', isLinked: true }])
  bob.send({ type: 'chat/say', payload: { text: 'hi' } })
  t.strictSame(await alice.next('chat/said'), { type: 'chat/said', payload: { username: 'bob', text: 'hi' } })
  t.strictSame(await bob.take(1), [{ type: 'chat/said', payload: { username: 'bob', text: 'hi' } }])
  bob.close()
  t.strictSame(await alice.next('krmx/unlinked'), { type: 'krmx/unlinked', payload: { username: 'bob' } })
  t.strictSame(alice.users(), [{ username: 'alice', isLinked: true }, { username: 'bob', isLinked: false }])
  t.strictSame(alice.unread(), [])
  t.equal(alice.frames().length, 7)
})

t.test('a rejected link throws a LinkRejectedError with the reason; linkUser closes its connection', async t => {
  const app = await chatApp(t)
  const client = await LinkTestClient.open(app, '/ws')
  const error = await client.link('mallory', { auth: 'guess' }).then(() => undefined, (err: unknown) => err)
  t.ok(error instanceof LinkRejectedError)
  t.strictSame([(error as LinkRejectedError).reason, (error as Error).message], ['wrong password', 'the link of mallory was rejected: wrong password'])
  await t.rejects(linkUser(app, 'eve', { path: '/ws' }), new LinkRejectedError('eve', 'wrong password'))
  await eventually(() => app.linkServer.getStats().connections === 1, () => 'the connection of eve was not closed')
  const alice = await linkUser(app, 'alice', { auth: 'secret', path: '/ws', version: testClientVersion })
  t.strictSame(alice.users(), [{ username: 'alice', isLinked: true }])
  await app.linkServer.kick('alice')
  t.strictSame(await alice.next('krmx/left'), { type: 'krmx/left', payload: { username: 'alice' } })
  t.strictSame(alice.users(), [])
})

t.test('a wait that times out names what did arrive; closed() answers the close code, before and after the close', async t => {
  const app = await chatApp(t)
  const alice = await linkUser(app, 'alice', { auth: 'secret', path: '/ws' })
  app.linkServer.broadcast({ type: 'news', payload: 1 })
  await t.rejects(alice.next('chat/said', 50), new Error('waited 50 ms for chat/said; unread frames: []'))
  app.linkServer.broadcast({ type: 'news', payload: 2 })
  await t.rejects(alice.take(2, 50), new Error('waited 50 ms for 2 frames; unread frames: [{"type":"news","payload":2}]'))
  const silent = await LinkTestClient.open(app, '/ws')
  await t.rejects(silent.link('bob', { auth: 'secret' }, 0).then(() => silent.next('never', 0)), /waited 0 ms for never/)
  const closed = alice.closed()
  alice.ws.close(4000, 'bye')
  t.strictSame(await closed, { code: 4000, reason: 'bye' })
  t.strictSame(await alice.closed(), { code: 4000, reason: 'bye' }, 'and again, after the close')
})
