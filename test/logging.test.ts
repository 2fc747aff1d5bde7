import t from 'tap'
import { build, inject } from './helper.js'

t.test('the plugin logs through a child of the instance logger', async t => {
  const logs: Array<Record<string, unknown>> = []
  const stream = { write: (line: string) => { logs.push(JSON.parse(line)) } }
  const app = await build(t, { fastify: { logger: { level: 'debug', stream } } })
  const client = await inject(app)
  client.link('x')
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
