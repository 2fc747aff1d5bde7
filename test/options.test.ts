import Fastify from 'fastify'
import t from 'tap'
import fastifyLinkServer from '../index.js'
import { resolveOptions } from '../lib/options.js'
import { isValidKrmxUsername } from '../lib/username.js'

t.test('defaults', async t => {
  t.strictSame(resolveOptions({}), {
    path: '/',
    acceptNewUsers: true,
    authTimeoutMilliseconds: 10_000,
    isValidUsername: isValidKrmxUsername,
    pingIntervalMilliseconds: 15_000,
    acceptedVersions: ['0.5.x', '0.6.x']
  })
})

t.test('authTimeoutMilliseconds below 1 becomes 1; pingIntervalMilliseconds 1-99 becomes 100, 0 stays off', async t => {
  t.equal(resolveOptions({ authTimeoutMilliseconds: 0 }).authTimeoutMilliseconds, 1)
  t.equal(resolveOptions({ authTimeoutMilliseconds: -10 }).authTimeoutMilliseconds, 1)
  t.equal(resolveOptions({ authTimeoutMilliseconds: 250 }).authTimeoutMilliseconds, 250)
  t.equal(resolveOptions({ pingIntervalMilliseconds: 0 }).pingIntervalMilliseconds, 0)
  t.equal(resolveOptions({ pingIntervalMilliseconds: 1 }).pingIntervalMilliseconds, 100)
  t.equal(resolveOptions({ pingIntervalMilliseconds: 99 }).pingIntervalMilliseconds, 100)
  t.equal(resolveOptions({ pingIntervalMilliseconds: 100 }).pingIntervalMilliseconds, 100)
  t.equal(resolveOptions({ pingIntervalMilliseconds: 2500 }).pingIntervalMilliseconds, 2500)
})

t.test('a wrong option fails register with FST_LINK_INVALID_OPTION before anything is decorated', async t => {
  const cases: Array<[Record<string, unknown>, string]> = [
    [{ path: 'link' }, 'Invalid fastify-link-server option "path": must be a string that starts with "/"'],
    [{ path: 5 }, 'Invalid fastify-link-server option "path": must be a string that starts with "/"'],
    [{ acceptNewUsers: 'yes' }, 'Invalid fastify-link-server option "acceptNewUsers": must be a boolean'],
    [{ authTimeoutMilliseconds: '10' }, 'Invalid fastify-link-server option "authTimeoutMilliseconds": must be a finite number of milliseconds'],
    [{ authTimeoutMilliseconds: Number.NaN }, 'Invalid fastify-link-server option "authTimeoutMilliseconds": must be a finite number of milliseconds'],
    [{ pingIntervalMilliseconds: Infinity }, 'Invalid fastify-link-server option "pingIntervalMilliseconds": must be a finite number of milliseconds'],
    [{ pingIntervalMilliseconds: -1 }, 'Invalid fastify-link-server option "pingIntervalMilliseconds": must be 0 (off) or a positive number of milliseconds'],
    [{ isValidUsername: /abc/ }, 'Invalid fastify-link-server option "isValidUsername": must be a function (username) => boolean'],
    [{ acceptedVersions: '0.6.x' }, 'Invalid fastify-link-server option "acceptedVersions": must be a non-empty array of versions like "0.6.x" or "0.6.3"'],
    [{ acceptedVersions: [] }, 'Invalid fastify-link-server option "acceptedVersions": must be a non-empty array of versions like "0.6.x" or "0.6.3"'],
    [{ acceptedVersions: ['0.6'] }, 'Invalid fastify-link-server option "acceptedVersions": must be a non-empty array of versions like "0.6.x" or "0.6.3"'],
    [{ acceptedVersions: [6] }, 'Invalid fastify-link-server option "acceptedVersions": must be a non-empty array of versions like "0.6.x" or "0.6.3"']
  ]
  for (const [options, message] of cases) {
    const app = Fastify()
    let error: unknown
    try {
      await app.register(fastifyLinkServer, options)
    } catch (caught) {
      error = caught
    }
    t.ok(error instanceof TypeError, 'a TypeError')
    const { code, message: actual } = error as { code: string, message: string }
    t.strictSame({ code, message: actual }, { code: 'FST_LINK_INVALID_OPTION', message })
    t.equal(app.hasDecorator('linkServer'), false)
    await app.close()
  }
})

t.test('the accepted version ranges accept x, * and exact patches', async t => {
  t.strictSame(resolveOptions({ acceptedVersions: ['0.6.*', '1.0.x', '2.1.3'] }).acceptedVersions, ['0.6.*', '1.0.x', '2.1.3'])
})
