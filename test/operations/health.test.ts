import Fastify from 'fastify'
import t from 'tap'
import fastifyLinkServer from '../../index.js'
import { build } from '../helpers/app.js'
import { unresponsive } from '../helpers/clients.js'

// Health endpoints of one process; readiness while Redis is away is in cluster-operations.test.ts.

interface Ready { notReadyReason: () => string | undefined }

t.test('health: live and ready once the link server takes links; not ready while starting; a path of its own', async t => {
  const starting = Fastify()
  starting.register(fastifyLinkServer, { health: true })
  await starting.after()
  t.equal((starting.linkServer as unknown as Ready).notReadyReason(), 'the link server is starting')
  await starting.close()
  for (const [health, base] of [[true, '/health'], [{ path: '/status/' }, '/status']] as const) {
    const app = await build(t, { health })
    const live = await app.inject(`${base}/live`)
    const ready = await app.inject(`${base}/ready`)
    t.strictSame([live.statusCode, live.json(), ready.statusCode, ready.json()], [200, { status: 'live' }, 200, { status: 'ready' }])
  }
  const off = await build(t)
  t.equal((await off.inject('/health/ready')).statusCode, 404, 'off by default')
})

t.test('drain: once closing began, readiness answers 503 with its reason', async t => {
  const app = Fastify({ return503OnClosing: false })
  await app.register(fastifyLinkServer, { health: true, pingIntervalMilliseconds: 0 })
  await app.listen({ port: 0, host: '127.0.0.1' })
  const { port } = app.server.address() as { port: number }
  await unresponsive(port) // holds the close open for its grace period
  const closing = app.close()
  await new Promise(resolve => setImmediate(resolve))
  const ready = await fetch(`http://127.0.0.1:${port}/health/ready`) // a load balancer's probe: inject is closed already
  t.strictSame([ready.status, await ready.json()], [503, { status: 'not ready', reason: 'the link server is closing' }])
  await closing
})
