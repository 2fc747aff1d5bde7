import Fastify from 'fastify'
import t from 'tap'
import { inject } from '../helpers/clients.js'
import type { TestBackend } from '../helpers/app.js'

/** The user-queries tests, on `backend`. */
export default function suite ({ build }: TestBackend): void {
  t.test('getUser and isLinked answer for one user without a scan of getUsers', async t => {
    const app = await build(t)
    const alice = await inject(app)
    await alice.linked('alice', 3)
    await app.linkServer.join('bob')
    t.strictSame(
      ['alice', 'bob', 'carol', '__proto__'].map(username => [app.linkServer.getUser(username), app.linkServer.isLinked(username)]),
      [[{ username: 'alice', isLinked: true }, true], [{ username: 'bob', isLinked: false }, false], [undefined, false], [undefined, false]]
    )
  })

  t.test('misuse errors carry the HTTP status of what they mean, so a route that lets one through answers it', async t => {
    const app = await build(t, {
      maxUsers: 1,
      setup: app => {
        app.post<{ Params: { username: string } }>('/users/:username/kick', async (request) => {
          await app.linkServer.kick(request.params.username)
          return { kicked: request.params.username }
        })
        app.post<{ Params: { username: string } }>('/users/:username', async (request) => {
          await app.linkServer.join(request.params.username)
          return { joined: request.params.username }
        })
        app.post<{ Params: { username: string } }>('/users/:username/unlink', async (request) => {
          await app.linkServer.unlink(request.params.username)
          return { unlinked: request.params.username }
        })
      }
    })
    const answers = []
    for (const url of ['/users/alice', '/users/alice', '/users/bob', '/users/x', '/users/alice/unlink', '/users/nobody/kick', '/users/alice/kick']) {
      const response = await app.inject({ method: 'POST', url })
      answers.push([url, response.statusCode, response.json().code])
    }
    t.strictSame(answers, [
      ['/users/alice', 200, undefined],
      ['/users/alice', 409, 'FST_LINK_USER_EXISTS'],
      ['/users/bob', 503, 'FST_LINK_SERVER_FULL'],
      ['/users/x', 400, 'FST_LINK_INVALID_USERNAME'],
      ['/users/alice/unlink', 409, 'FST_LINK_USER_NOT_LINKED'],
      ['/users/nobody/kick', 404, 'FST_LINK_UNKNOWN_USER'],
      ['/users/alice/kick', 200, undefined]
    ])
  })

  t.test('before ready and after close the user API answers 503', async t => {
    const app = Fastify()
    const { default: plugin } = await import('../../index.js')
    await app.register(plugin, { pingIntervalMilliseconds: 0 })
    const errors = []
    try {
      await app.linkServer.join('alice')
    } catch (error) {
      errors.push((error as { statusCode: number }).statusCode)
    }
    await app.ready()
    await app.close()
    try {
      app.linkServer.kick('alice')
    } catch (error) {
      errors.push((error as { statusCode: number }).statusCode)
    }
    t.strictSame(errors, [503, 503])
  })
}
