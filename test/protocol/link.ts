import t from 'tap'
import { inject } from '../helpers/clients.js'
import { record } from '../helpers/events.js'
import { frames, version } from '../helpers/frames.js'
import type { TestBackend } from '../helpers/app.js'

/** The link tests, on `backend`. */
export default function suite ({ build }: TestBackend): void {
  t.test('a first user is accepted, then told of itself, joined and linked', async t => {
    const app = await build(t)
    const events = record(app)
    const alice = await inject(app)
    t.strictSame(await alice.linked('alice', 3), [frames.accepted, frames.joined('alice'), frames.linked('alice')])
    t.strictSame(await alice.settle(), [])
    t.strictSame(events, [['join', 'alice'], ['link', 'alice']])
    t.strictSame(app.linkServer.getUsers(), [{ username: 'alice', isLinked: true }])
  })

  t.test('a new user is announced to the others, then receives every user in join order', async t => {
    const app = await build(t)
    const alice = await inject(app)
    await alice.linked('alice', 3)
    const bob = await inject(app)
    t.strictSame(await bob.linked('bob', 5), [
      frames.accepted,
      frames.joined('alice'), frames.linked('alice'),
      frames.joined('bob'), frames.linked('bob')
    ])
    t.strictSame(await alice.take(2), [frames.joined('bob'), frames.linked('bob')])
    bob.send({ type: 'krmx/unlink' })
    t.strictSame(await alice.take(1), [frames.unlinked('bob')])
    t.strictSame(await bob.take(1), [frames.unlinked('bob')])

    const events = record(app)
    const carol = await inject(app)
    t.strictSame(await carol.linked('carol', 6), [
      frames.accepted,
      frames.joined('alice'), frames.linked('alice'),
      frames.joined('bob'),
      frames.joined('carol'), frames.linked('carol')
    ], 'an unlinked user is listed as joined only')
    t.strictSame(await alice.take(2), [frames.joined('carol'), frames.linked('carol')])
    t.strictSame(await bob.settle(), [], 'an unlinked connection hears nothing')
    t.strictSame(events, [['join', 'carol'], ['link', 'carol']])
  })

  t.test('an existing user relinks from a new connection: no join, linked is announced', async t => {
    const app = await build(t)
    const alice = await inject(app)
    await alice.linked('alice', 3)
    const bob = await inject(app)
    await bob.linked('bob', 5)
    await alice.take(2)
    bob.ws.terminate()
    t.strictSame(await alice.take(1), [frames.unlinked('bob')])

    const events = record(app)
    const bobAgain = await inject(app)
    t.strictSame(await bobAgain.linked('bob', 5), [
      frames.accepted,
      frames.joined('alice'), frames.linked('alice'),
      frames.joined('bob'), frames.linked('bob')
    ])
    t.strictSame(await alice.take(1), [frames.linked('bob')])
    t.strictSame(events, [['link', 'bob']])
    t.strictSame(app.linkServer.getUsers(), [{ username: 'alice', isLinked: true }, { username: 'bob', isLinked: true }])
  })

  t.test('the same connection may link again after it unlinked, to another user', async t => {
    const app = await build(t)
    const client = await inject(app)
    await client.linked('alice', 3)
    client.send({ type: 'krmx/unlink' })
    t.strictSame(await client.take(1), [frames.unlinked('alice')])
    t.strictSame(await client.linked('bob', 4), [
      frames.accepted,
      frames.joined('alice'),
      frames.joined('bob'), frames.linked('bob')
    ])
    t.strictSame(app.linkServer.getUsers(), [{ username: 'alice', isLinked: false }, { username: 'bob', isLinked: true }])
  })

  t.test('link requests are checked in the order of the protocol, each with its reason', async t => {
    const app = await build(t, { acceptNewUsers: false, maxLinkAttempts: 0 })
    await app.linkServer.join('alice')
    app.linkServer.on('authenticate', (username, _info, reject) => {
      if (username === 'alice') {
        reject('alice may not link today')
      }
    })
    const taken = await inject(app)
    await app.linkServer.join('bob')
    t.strictSame(await taken.linked('bob', 4), [frames.accepted, frames.joined('alice'), frames.joined('bob'), frames.linked('bob')])
    const client = await inject(app)
    const cases: Array<[unknown, string]> = [
      [{ type: 'chat/say', payload: { text: 'hi' } }, 'unlinked connection'],
      [{ type: 'krmx/unlink' }, 'unlinked connection'],
      [{ type: 'krmx/link' }, 'invalid link request'],
      [{ type: 'krmx/link', payload: 'alice' }, 'invalid link request'],
      [{ type: 'krmx/link', payload: { username: 'alice' } }, 'invalid link request'],
      [{ type: 'krmx/link', payload: { username: 'alice', version: 6 } }, 'invalid link request'],
      [{ type: 'krmx/link', payload: { username: 7, version } }, 'invalid link request'],
      [{ type: 'krmx/link', payload: { username: 'alice', version, auth: 12 } }, 'invalid link request'],
      [{ type: 'krmx/link', payload: { username: '!', version: '0.7.0' } }, 'krmx server version mismatch (server=0.6.*,client=0.7.0)'],
      [{ type: 'krmx/link', payload: { username: '!', version } }, 'invalid username'],
      [{ type: 'krmx/link', payload: { username: 'carol', version } }, 'server is not accepting new users'],
      [{ type: 'krmx/link', payload: { username: 'bob', version } }, 'user bob is already linked to a connection'],
      [{ type: 'krmx/link', payload: { username: 'alice', version, auth: 'token' } }, 'alice may not link today']
    ]
    for (const [frame] of cases) {
      client.sendRaw(frame)
    }
    t.strictSame(await client.take(cases.length), cases.map(([, reason]) => frames.rejected(reason)))
    t.strictSame(app.linkServer.getUsers(), [{ username: 'alice', isLinked: false }, { username: 'bob', isLinked: true }])
  })

  t.test('a rejected connection stays open and may link again', async t => {
    const app = await build(t)
    const client = await inject(app)
    client.requestLink('a')
    t.strictSame(await client.take(1), [frames.rejected('invalid username')])
    t.strictSame(await client.linked('alice', 3), [frames.accepted, frames.joined('alice'), frames.linked('alice')])
  })

  t.test('a malformed frame on an unlinked connection is answered with invalid message', async t => {
    const app = await build(t)
    const client = await inject(app)
    const malformed = ['not json', '[]', 'null', '42', '"krmx/link"', '{}', '{"type":5}', '{"payload":{}}']
    for (const data of malformed) {
      client.ws.send(data)
    }
    client.ws.send(Buffer.from(JSON.stringify({ type: 'krmx/link', payload: { username: 'alice', version } })), { binary: true })
    t.strictSame(await client.take(malformed.length + 1), Array(malformed.length + 1).fill(frames.rejected('invalid message')))
    t.strictSame(app.linkServer.getUsers(), [])
  })

  t.test('link frames may carry extra fields', async t => {
    const app = await build(t)
    const infos: unknown[] = []
    app.linkServer.on('authenticate', (username, info) => { infos.push([username, info.isNewUser, info.auth]) })
    const client = await inject(app)
    client.sendRaw({ type: 'krmx/link', payload: { username: 'alice', version: '0.5.4', extra: true }, metadata: { at: 1 } })
    t.strictSame(await client.take(3), [frames.accepted, frames.joined('alice'), frames.linked('alice')])
    t.strictSame(infos, [['alice', true, undefined]])
  })
}
