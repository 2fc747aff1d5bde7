import Fastify from 'fastify'
import t from 'tap'
import fastifyLinkServer from '../../index.js'
import { inject } from '../helpers/clients.js'
import { record } from '../helpers/events.js'
import { frames } from '../helpers/frames.js'
import type { TestBackend } from '../helpers/app.js'

/** The api tests, on `backend`. */
export default function suite ({ build }: TestBackend): void {
  t.test('getStatus: initializing until ready, listening from ready on, then closing and closed', async t => {
    const app = Fastify()
    await app.register(fastifyLinkServer, { pingIntervalMilliseconds: 0 })
    const statuses: string[] = [app.linkServer.getStatus()]
    app.linkServer.on('leave', () => statuses.push(app.linkServer.getStatus()))
    app.linkServer.on('close', () => statuses.push(app.linkServer.getStatus()))
    t.throws(() => app.linkServer.join('alice'), { code: 'FST_LINK_NOT_READY', message: 'Cannot join a user before the link server is ready' })
    t.throws(() => app.linkServer.send('alice', { type: 'x' }), { code: 'FST_LINK_NOT_READY' })
    t.throws(() => app.linkServer.broadcast({ type: 'x' }), { code: 'FST_LINK_NOT_READY' })
    t.throws(() => app.linkServer.unlink('alice'), { code: 'FST_LINK_NOT_READY' })
    t.throws(() => app.linkServer.kick('alice'), { code: 'FST_LINK_NOT_READY', message: 'Cannot kick a user before the link server is ready' })
    await app.ready()
    statuses.push(app.linkServer.getStatus())
    await app.linkServer.join('alice')
    await app.close()
    t.strictSame(statuses, ['initializing', 'listening', 'closing', 'closed'])
    t.throws(() => app.linkServer.join('bob'), { code: 'FST_LINK_CLOSED', message: 'Cannot join a user when the link server is closed' })
    t.throws(() => app.linkServer.broadcast({ type: 'x' }), { code: 'FST_LINK_CLOSED', message: 'Cannot broadcast a message when the link server is closed' })
    t.throws(() => app.linkServer.kick('alice'), { code: 'FST_LINK_CLOSED' })
    t.strictSame(app.linkServer.getUsers(), [])
  })

  t.test('join adds an unlinked user and announces it; misuse throws coded errors', async t => {
    const app = await build(t)
    const alice = await inject(app)
    await alice.linked('alice', 3)
    const events = record(app)
    await app.linkServer.join('bob')
    t.strictSame(await alice.take(1), [frames.joined('bob')])
    t.strictSame(events, [['join', 'bob']])
    t.strictSame(app.linkServer.getUsers(), [{ username: 'alice', isLinked: true }, { username: 'bob', isLinked: false }])
    t.throws(() => app.linkServer.join('bob'), { code: 'FST_LINK_USER_EXISTS', message: 'Cannot join user "bob": the user already exists' })
    t.throws(() => app.linkServer.join('alice'), { code: 'FST_LINK_USER_EXISTS' })
    t.throws(() => app.linkServer.join('x'), { code: 'FST_LINK_INVALID_USERNAME', message: 'Cannot join user "x": invalid username' })
    t.strictSame(events, [['join', 'bob']])
  })

  t.test('unlink and kick misuse throws coded errors', async t => {
    const app = await build(t)
    await app.linkServer.join('bob')
    t.throws(() => app.linkServer.unlink('nobody'), { code: 'FST_LINK_UNKNOWN_USER', message: 'Cannot unlink a user: user "nobody" does not exist' })
    t.throws(() => app.linkServer.unlink('bob'), { code: 'FST_LINK_USER_NOT_LINKED', message: 'Cannot unlink a user: user "bob" is not linked to a connection' })
    t.throws(() => app.linkServer.kick('nobody'), { code: 'FST_LINK_UNKNOWN_USER', message: 'Cannot kick a user: user "nobody" does not exist' })
  })

  t.test('a custom isValidUsername decides, and one that throws refuses the username', async t => {
    const app = await build(t, {
      isValidUsername: (username) => {
        if (username === 'boom') {
          throw new Error('boom')
        }
        return username.startsWith('player-')
      }
    })
    const client = await inject(app)
    client.requestLink('alice')
    client.requestLink('boom')
    t.strictSame(await client.take(2), [frames.rejected('invalid username'), frames.rejected('invalid username')])
    t.throws(() => app.linkServer.join('boom'), { code: 'FST_LINK_INVALID_USERNAME' })
    t.strictSame(await client.linked('player-1', 3), [frames.accepted, frames.joined('player-1'), frames.linked('player-1')])
  })

  t.test('acceptedVersions: numbers are compared, not prefixes; exact versions and other ranges can be configured', async t => {
    const app = await build(t)
    const client = await inject(app)
    const versions = ['0.50.0', '0.6', '0.7.0', '1.6.0', '0.06.1', 'v0.6.1', '0.6.1.2', '']
    for (const version of versions) {
      client.send({ type: 'krmx/link', payload: { username: 'alice', version } })
    }
    t.strictSame(await client.take(versions.length), versions.map(version =>
      frames.rejected(`krmx server version mismatch (server=0.6.*,client=${version})`)))
    for (const version of ['0.5.0', '0.5.4', '0.6.10', '0.6.0-beta.1']) {
      client.send({ type: 'krmx/link', payload: { username: 'alice', version } })
      t.strictSame(await client.take(3), [frames.accepted, frames.joined('alice'), frames.linked('alice')], `${version} is accepted`)
      client.send({ type: 'krmx/leave' })
      await client.take(2)
    }

    const exact = await build(t, { acceptedVersions: ['0.6.x', '1.2.3'] })
    const other = await inject(exact)
    other.send({ type: 'krmx/link', payload: { username: 'alice', version: '1.2.4' } })
    t.strictSame(await other.take(1), [frames.rejected('krmx server version mismatch (server=1.2.3,client=1.2.4)')])
    other.send({ type: 'krmx/link', payload: { username: 'alice', version: '0.5.4' } })
    t.strictSame(await other.take(1), [frames.rejected('krmx server version mismatch (server=1.2.3,client=0.5.4)')])
    other.send({ type: 'krmx/link', payload: { username: 'alice', version: '1.2.3' } })
    t.strictSame(await other.take(1), [frames.accepted])
  })
}
