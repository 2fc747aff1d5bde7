import t from 'tap'
import { Client, inject } from '../helpers/clients.js'
import { record } from '../helpers/events.js'
import { frames } from '../helpers/frames.js'
import { eventually, timerCount } from '../helpers/waits.js'
import type { TestBackend } from '../helpers/app.js'

/** The authenticate tests, on `backend`. */
export default function suite ({ build, memoryOnly }: TestBackend): void {
  t.test('authenticate listeners receive the username, isNewUser, auth and the upgrade request', async t => {
    const app = await build(t)
    const seen: unknown[] = []
    app.linkServer.on('authenticate', (username, info) => {
      seen.push([username, info.isNewUser, info.auth, info.request.headers['x-team'], { ...info.request.query as object }])
    })
    const first = new Client(await app.injectWS('/?room=lobby', { headers: { 'x-team': 'red' } }))
    await first.linked('alice', 3)
    first.send({ type: 'krmx/unlink' })
    await first.take(1)
    first.requestLink('alice', { auth: 'secret' })
    await first.take(3)
    t.strictSame(seen, [
      ['alice', true, undefined, 'red', { room: 'lobby' }],
      ['alice', false, 'secret', 'red', { room: 'lobby' }]
    ])
  })

  t.test('the first reject wins, and every listener is still called', async t => {
    const app = await build(t)
    const calls: string[] = []
    app.linkServer.on('authenticate', (_username, _info, reject) => { calls.push('first'); reject('first reason') })
    app.linkServer.on('authenticate', (_username, _info, reject) => { calls.push('second'); reject('second reason') })
    const client = await inject(app)
    client.requestLink('alice')
    t.strictSame(await client.take(1), [frames.rejected('first reason')])
    t.strictSame(calls, ['first', 'second'])
    t.strictSame(app.linkServer.getUsers(), [])
  })

  t.test('a listener that throws rejects the link with authentication failed; its text is logged, not sent', async t => {
    const logs: Array<{ level: number, msg: string, username?: string, err?: { message: string } }> = []
    const stream = { write: (line: string) => { logs.push(JSON.parse(line)) } }
    const app = await build(t, { fastify: { logger: { level: 'warn', stream } } })
    const calls: string[] = []
    app.linkServer.on('authenticate', (username) => {
      calls.push(`throws for ${username}`)
      if (username === 'alice') {
        throw new Error('connect ECONNREFUSED 10.0.0.5:5432')
      }
      // eslint-disable-next-line no-throw-literal
      throw 'a string'
    })
    app.linkServer.on('authenticate', (username) => { calls.push(`still called for ${username}`) })
    const client = await inject(app)
    client.requestLink('alice')
    client.requestLink('bob')
    t.strictSame(await client.take(2), [frames.rejected('authentication failed'), frames.rejected('authentication failed')])
    t.strictSame(calls, ['throws for alice', 'still called for alice', 'throws for bob', 'still called for bob'])
    t.strictSame(logs.map(log => [log.level, log.msg, log.username, log.err?.message]), [
      [40, 'an authenticate listener or handler failed; the link is rejected', 'alice', 'connect ECONNREFUSED 10.0.0.5:5432'],
      [40, 'an authenticate listener or handler failed; the link is rejected', 'bob', undefined]
    ])
  })

  t.test('an error meant for the client (expose: true, or a 4xx statusCode) sends its own message', async t => {
    const app = await build(t)
    const errors: Record<string, unknown> = {
      exposed: Object.assign(new Error('your plan does not include this room'), { expose: true }),
      unauthorized: Object.assign(new Error('token expired'), { statusCode: 401 }),
      internal: Object.assign(new Error('pool exhausted'), { statusCode: 503 }),
      hidden: Object.assign(new Error('not for you'), { expose: false, statusCode: 500 }),
      empty: Object.assign(new Error(''), { expose: true }),
      hostile: new Proxy({}, { get: () => { throw new Error('a getter throws') } })
    }
    app.linkServer.on('authenticate', (username, _info, _reject, markAsync) => {
      if (username === 'sync') {
        throw errors.unauthorized
      }
      markAsync(async () => { throw errors[username] })
    })
    const client = await inject(app)
    for (const username of ['exposed', 'unauthorized', 'internal', 'hidden', 'empty', 'hostile', 'sync']) {
      client.requestLink(username)
    }
    t.strictSame(await client.take(7), [
      frames.rejected('your plan does not include this room'),
      frames.rejected('token expired'),
      frames.rejected('authentication failed'),
      frames.rejected('authentication failed'),
      frames.rejected('authentication failed'),
      frames.rejected('authentication failed'),
      frames.rejected('token expired')
    ])
  })

  t.test('markAsync: the link waits for the handler and is accepted when it resolves', async t => {
    const app = await build(t)
    const events = record(app)
    let release!: () => void
    app.linkServer.on('authenticate', (_username, _info, _reject, markAsync) => {
      markAsync(() => new Promise<void>(resolve => { release = resolve }))
    })
    const client = await inject(app)
    client.requestLink('alice')
    t.strictSame(await client.settle(), [], 'nothing is sent while authentication is pending')
    t.strictSame(app.linkServer.getUsers(), [])
    await eventually(() => release !== undefined, () => 'authenticate was not called') // a claim may be a Redis round trip
    release()
    t.strictSame(await client.take(3), [frames.accepted, frames.joined('alice'), frames.linked('alice')])
    t.strictSame(events, [['join', 'alice'], ['link', 'alice']])
  })

  t.test('markAsync: reject inside the handler, a rejected handler, a non-Error rejection', async t => {
    const app = await build(t)
    app.linkServer.on('authenticate', (username, _info, reject, markAsync) => {
      markAsync(async () => {
        await Promise.resolve()
        if (username === 'alice') {
          reject('alice is banned')
        } else if (username === 'bob') {
          throw new Error('token expired')
        } else {
          // eslint-disable-next-line no-throw-literal
          throw 404
        }
      })
    })
    const client = await inject(app)
    client.requestLink('alice')
    client.requestLink('bob')
    client.requestLink('carol')
    t.strictSame(await client.take(3), [
      frames.rejected('alice is banned'),
      frames.rejected('authentication failed'),
      frames.rejected('authentication failed')
    ])
  })

  t.test('a handler that throws synchronously rejects the link', async t => {
    const app = await build(t)
    app.linkServer.on('authenticate', (_username, _info, _reject, markAsync) => {
      markAsync(() => { throw new Error('sync throw') })
    })
    const client = await inject(app)
    client.requestLink('alice')
    t.strictSame(await client.take(1), [frames.rejected('authentication failed')])
  })

  t.test('a handler that never settles is rejected with authentication timeout, and the connection may try again', async t => {
    const app = await build(t, { authTimeoutMilliseconds: 30 })
    let attempts = 0
    app.linkServer.on('authenticate', (_username, _info, _reject, markAsync) => {
      attempts++
      if (attempts === 1) {
        markAsync(() => new Promise(() => {}))
      }
    })
    const client = await inject(app)
    client.requestLink('alice')
    t.strictSame(await client.take(1), [frames.rejected('authentication timeout')])
    t.strictSame(app.linkServer.getUsers(), [])
    t.strictSame(await client.linked('alice', 3), [frames.accepted, frames.joined('alice'), frames.linked('alice')])
  })

  t.test('a timeout of 1 ms', async t => {
    const app = await build(t, { authTimeoutMilliseconds: 1 })
    app.linkServer.on('authenticate', (_username, _info, _reject, markAsync) => {
      markAsync(() => new Promise(() => {}))
    })
    const client = await inject(app)
    client.requestLink('alice')
    t.strictSame(await client.take(1), [frames.rejected('authentication timeout')])
  })

  t.test('the authentication timer is cleared as soon as the decision is made', memoryOnly(), async t => {
    const app = await build(t, { authTimeoutMilliseconds: 60_000 })
    let release!: () => void
    app.linkServer.on('authenticate', (_username, _info, _reject, markAsync) => {
      markAsync(() => new Promise<void>(resolve => { release = resolve }))
    })
    const before = timerCount()
    const client = await inject(app)
    client.requestLink('alice')
    await client.settle()
    t.equal(timerCount(), before + 1, 'one timer while pending')
    await eventually(() => release !== undefined, () => 'authenticate was not called') // a claim may be a Redis round trip
    release()
    await client.take(3)
    t.equal(timerCount(), before, 'no timer after the decision')
  })

  t.test('a later reject from an async handler after another handler decided is ignored', async t => {
    const app = await build(t)
    let lateReject!: (reason: string) => void
    app.linkServer.on('authenticate', (_username, _info, reject, markAsync) => {
      lateReject = reject
      markAsync(async () => { throw new Error('first') })
    })
    const client = await inject(app)
    client.requestLink('alice')
    t.strictSame(await client.take(1), [frames.rejected('authentication failed')])
    lateReject('too late')
    t.strictSame(await client.settle(), [])
  })
}
