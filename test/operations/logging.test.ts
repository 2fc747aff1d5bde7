import t from 'tap'
import Fastify from 'fastify'
import fastifyLinkServer from '../../index.js'
import { build } from '../helpers/app.js'
import { inject } from '../helpers/clients.js'
import { LogRecorder } from '../helpers/events.js'

t.test('the plugin logs through a child of the instance logger', async t => {
  const logs: Array<Record<string, unknown>> = []
  const stream = { write: (line: string) => { logs.push(JSON.parse(line)) } }
  const app = await build(t, { fastify: { logger: { level: 'debug', stream } } })
  const client = await inject(app)
  client.requestLink('x')
  await client.take(1)
  await client.linked('alice', 3)
  client.send({ type: 'krmx/hello' })
  await client.take(1)
  const ours = logs
    .filter(log => log.name === 'fastify-link-server')
    .map(({ level, msg, username, reason, type }) => ({ level, msg, username, reason, type }))
  t.strictSame(ours, [
    { level: 20, msg: 'link request rejected', username: undefined, reason: 'invalid username', type: undefined },
    { level: 30, msg: 'user joined', username: 'alice', reason: undefined, type: undefined },
    { level: 30, msg: 'user linked', username: 'alice', reason: undefined, type: undefined },
    { level: 40, msg: 'user sent an unknown frame type with the reserved krmx/ prefix and is unlinked', username: 'alice', reason: undefined, type: 'krmx/hello' },
    { level: 30, msg: 'user unlinked', username: 'alice', reason: undefined, type: undefined }
  ])
})

t.test('the start log names the WebSocket URL clients connect to, with the prefix and the path, IPv4 and IPv6', async t => {
  const urls = []
  for (const host of ['127.0.0.1', '::1']) {
    const log = new LogRecorder()
    const app = Fastify({ logger: { stream: log.stream } })
    await app.register(async child => { await child.register(fastifyLinkServer, { path: '/link', pingIntervalMilliseconds: 0 }) }, { prefix: '/v1' })
    await app.listen({ port: 0, host })
    const { port } = app.server.address() as { port: number }
    const line = log.lines.find(line => line.msg === 'link server listening')
    urls.push([line?.url, line?.port === port])
    await app.close()
    t.equal(urls.at(-1)?.[0], host === '::1' ? `ws://[::1]:${port}/v1/link` : `ws://127.0.0.1:${port}/v1/link`)
  }
  t.strictSame(urls.map(([, samePort]) => samePort), [true, true])
})

t.test('the lines about a connection carry the request id of its upgrade, and its username once linked', async t => {
  const log = new LogRecorder()
  let ids = 0
  const app = await build(t, { fastify: { logger: { level: 'debug', stream: log.stream }, genReqId: () => `upgrade-${++ids}` } })
  const alice = await inject(app)
  alice.requestLink('-')
  await alice.take(1)
  await alice.linked('alice', 3)
  const bob = await inject(app)
  await bob.linked('bob', 5)
  alice.send({ type: 'krmx/hello' })
  await bob.take(1)
  app.linkServer.join('carol')
  await bob.take(1)
  const ours = log.lines
    .filter(line => line.name === 'fastify-link-server' && line.msg !== 'link server listening')
    .map(({ msg, reqId, username }) => [msg, reqId, username])
  t.strictSame(ours, [
    ['link request rejected', 'upgrade-1', undefined],
    ['user joined', 'upgrade-1', 'alice'],
    ['user linked', 'upgrade-1', 'alice'],
    ['user joined', 'upgrade-2', 'bob'],
    ['user linked', 'upgrade-2', 'bob'],
    ['user sent an unknown frame type with the reserved krmx/ prefix and is unlinked', 'upgrade-1', 'alice'],
    ['user unlinked', 'upgrade-1', 'alice'],
    ['user joined', undefined, 'carol'] // the application's, not a connection's
  ])
})
