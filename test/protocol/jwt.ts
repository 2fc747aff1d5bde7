import fastifyJwt from '@fastify/jwt'
import Fastify from 'fastify'
import t from 'tap'
import fastifyLinkServer from '../../index.js'
import { Client } from '../helpers/clients.js'
import { frames } from '../helpers/frames.js'
import type { TestBackend } from '../helpers/app.js'

/** The jwt tests, on `backend`. */
export default function suite (_backend: TestBackend): void {
  const secret = 'a secret of at least thirty-two characters'

  t.test('@fastify/jwt on the upgrade request: no valid token, no WebSocket; the token names the only user it may link', async t => {
    const app = Fastify()
    await app.register(fastifyJwt, { secret, verify: { extractToken: request => (request.query as { token?: string }).token } })
    await app.register(fastifyLinkServer, { pingIntervalMilliseconds: 0, linkTimeoutMilliseconds: 0 })
    // After the plugin, whose @fastify/websocket sets request.ws in an onRequest hook of its own.
    app.addHook('onRequest', async (request) => {
      if (request.ws) {
        await request.jwtVerify()
      }
    })
    app.linkServer.on('authenticate', (username, { request }, reject) => {
      if ((request.user as { sub: string }).sub !== username) {
        reject('token is for another user')
      }
    })
    await app.ready()
    await t.rejects(app.injectWS('/'), new Error('Unexpected server response: 400'), 'no token at all')
    await t.rejects(app.injectWS('/?token=forged'), new Error('Unexpected server response: 401'))
    const alice = new Client(await app.injectWS(`/?token=${app.jwt.sign({ sub: 'alice' })}`))
    t.teardown(async () => {
      alice.ws.terminate()
      await app.close()
    })
    alice.requestLink('bob')
    t.strictSame(await alice.take(1), [frames.rejected('token is for another user')])
    t.strictSame(await alice.linked('alice', 3), [frames.accepted, frames.joined('alice'), frames.linked('alice')])
  })

  t.test('@fastify/jwt in authenticate: the link frame carries the token', async t => {
    const app = Fastify()
    await app.register(fastifyJwt, { secret })
    await app.register(fastifyLinkServer, { pingIntervalMilliseconds: 0, linkTimeoutMilliseconds: 0 })
    app.linkServer.on('authenticate', (username, { auth }, reject, markAsync) => {
      markAsync(async () => {
        const claims = app.jwt.verify<{ sub: string }>(auth ?? '')
        if (claims.sub !== username) {
          reject('token is for another user')
        }
      })
    })
    await app.ready()
    const client = new Client(await app.injectWS('/'))
    t.teardown(async () => {
      client.ws.terminate()
      await app.close()
    })
    client.requestLink('alice')
    client.requestLink('alice', { auth: 'forged' })
    client.requestLink('alice', { auth: app.jwt.sign({ sub: 'bob' }) })
    t.strictSame(await client.take(3), [
      frames.rejected('authentication failed'), // fast-jwt's own 'missing token' is not meant for clients
      frames.rejected('authentication failed'), // nor 'The token is malformed.'
      frames.rejected('token is for another user')
    ])
    client.requestLink('alice', { auth: app.jwt.sign({ sub: 'alice' }) })
    t.strictSame(await client.take(3), [frames.accepted, frames.joined('alice'), frames.linked('alice')])
    t.strictSame(app.linkServer.getUsers(), [{ username: 'alice', isLinked: true }])
  })
}
