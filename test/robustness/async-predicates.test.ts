import t from 'tap'
import { build } from '../helpers/app.js'
import { inject, upgrade, urlOf } from '../helpers/clients.js'
import { LogRecorder } from '../helpers/events.js'
import { frames } from '../helpers/frames.js'
import { nextMacrotask, unhandledRejections } from '../helpers/waits.js'

// An async predicate returns a promise, which is truthy: before, it let every origin and every username in.

t.test('isValidUsername that returns a promise fails closed: the username is invalid, and it is logged', async t => {
  const rejections = unhandledRejections(t)
  const log = new LogRecorder()
  const app = await build(t, {
    fastify: { logger: { level: 'error', stream: log.stream } },
    isValidUsername: (async (username: string) => {
      if (username === 'thrower') {
        throw new Error('lookup failed')
      }
      return false
    }) as unknown as (username: string) => boolean
  })
  const client = await inject(app)
  client.requestLink('alice')
  client.requestLink('thrower')
  t.strictSame(await client.take(2), [frames.rejected('invalid username'), frames.rejected('invalid username')])
  t.throws(() => app.linkServer.join('bob'), { code: 'FST_LINK_INVALID_USERNAME' })
  t.strictSame(app.linkServer.getUsers(), [])
  t.strictSame((await log.count(3)).map(line => [line.level, line.msg, line.username]), [
    [50, 'isValidUsername returned a promise, but must answer synchronously; the username is treated as invalid', 'alice'],
    [50, 'isValidUsername returned a promise, but must answer synchronously; the username is treated as invalid', 'thrower'],
    [50, 'isValidUsername returned a promise, but must answer synchronously; the username is treated as invalid', 'bob']
  ])
  await nextMacrotask()
  t.strictSame(rejections, [], 'the rejected promise of the predicate is handled')
})

t.test('allowedOrigins as a predicate that returns a promise fails closed: HTTP 403, and it is logged', async t => {
  const log = new LogRecorder()
  const app = await build(t, {
    listen: true,
    fastify: { logger: { level: 'error', stream: log.stream } },
    allowedOrigins: (async () => true) as unknown as () => boolean
  })
  t.strictSame(await upgrade(urlOf(app), { origin: 'https://chat.example' }), {
    status: 403,
    body: { statusCode: 403, code: 'FST_LINK_ORIGIN_NOT_ALLOWED', error: 'Forbidden', message: 'Origin https://chat.example is not allowed' }
  })
  t.strictSame((await log.count(1)).map(line => [line.level, line.msg, line.origin]), [
    [50, 'allowedOrigins returned a promise, but must answer synchronously; the origin is refused', 'https://chat.example']
  ])
})
