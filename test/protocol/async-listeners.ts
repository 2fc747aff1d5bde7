import { setImmediate as macrotask } from 'node:timers/promises'
import t from 'tap'
import type { MarkAsync } from '../../index.js'
import { Type } from '@sinclair/typebox'
import { inject } from '../helpers/clients.js'
import { LogRecorder, record } from '../helpers/events.js'
import { frames } from '../helpers/frames.js'
import { eventually, nextMacrotask, unhandledRejections } from '../helpers/waits.js'
import type { TestBackend } from '../helpers/app.js'

/** The async-listeners tests, on `backend`. */
export default function suite ({ build, linkedPair }: TestBackend): void {
  /** A token check that answers later, as a database or a JWKS lookup does. */
  async function verify (token: string | undefined): Promise<void> {
    await macrotask()
    if (token !== 'good') {
      throw new Error(`token ${String(token)} is forged`)
    }
  }

  t.test('an async authenticate listener is awaited: its late reject refuses the link (it failed open)', async t => {
    const app = await build(t)
    const events = record(app)
    app.linkServer.on('authenticate', async (_username, { auth }, reject) => {
      try {
        await verify(auth)
      } catch {
        reject('bad token')
      }
    })
    const client = await inject(app)
    client.requestLink('alice', { auth: 'forged' })
    t.strictSame(await client.take(1), [frames.rejected('bad token')])
    t.strictSame(app.linkServer.getUsers(), [])
    client.requestLink('alice', { auth: 'good' })
    t.strictSame(await client.take(3), [frames.accepted, frames.joined('alice'), frames.linked('alice')])
    t.strictSame(events, [['join', 'alice'], ['link', 'alice']])
  })

  t.test('an async authenticate listener that throws after an await rejects the link, is logged, and crashes nothing', async t => {
    const rejections = unhandledRejections(t)
    const log = new LogRecorder()
    const app = await build(t, { fastify: { logger: { level: 'warn', stream: log.stream } } })
    app.linkServer.on('authenticate', async (_username, { auth }) => { await verify(auth) })
    const client = await inject(app)
    client.requestLink('alice', { auth: 'forged' })
    t.strictSame(await client.take(1), [frames.rejected('authentication failed')])
    t.strictSame(app.linkServer.getUsers(), [])
    t.strictSame((await log.count(1)).map(line => [line.level, line.msg, (line.err as { message: string }).message]), [
      [40, 'an authenticate listener or handler failed; the link is rejected', 'token forged is forged']
    ])
    await nextMacrotask()
    t.strictSame(rejections, [])
  })

  t.test('an async authenticate listener that never settles is rejected with authentication timeout', async t => {
    const app = await build(t, { authTimeoutMilliseconds: 20 })
    app.linkServer.on('authenticate', () => new Promise<void>(() => {}))
    const client = await inject(app)
    client.requestLink('alice')
    t.strictSame(await client.take(1), [frames.rejected('authentication timeout')])
    t.strictSame(app.linkServer.getUsers(), [])
  })

  t.test('no link is accepted while any decision is pending: a sync accept waits for an async listener beside it', async t => {
    const app = await build(t)
    let release!: (error?: Error) => void
    app.linkServer.on('authenticate', () => {}) // decides nothing, at once
    app.linkServer.on('authenticate', () => new Promise<void>((resolve, reject) => {
      release = error => error === undefined ? resolve() : reject(error)
    }))
    const client = await inject(app)
    client.requestLink('alice')
    t.strictSame(await client.settle(), [], 'nothing while the promise is pending')
    await eventually(() => release !== undefined, () => 'authenticate was not called') // a claim may be a Redis round trip
    release(new Error('denied'))
    release = undefined as unknown as typeof release
    t.strictSame(await client.take(1), [frames.rejected('authentication failed')])
    client.requestLink('alice')
    await client.settle()
    await eventually(() => release !== undefined, () => 'authenticate was not called') // a claim may be a Redis round trip
    release()
    t.strictSame(await client.take(3), [frames.accepted, frames.joined('alice'), frames.linked('alice')])
  })

  t.test('markAsync called from a pending handler after an await is honoured: the link waits for it, and its rejection refuses', async t => {
    const rejections = unhandledRejections(t)
    const app = await build(t)
    const order: string[] = []
    app.linkServer.on('authenticate', (username, _info, reject, markAsync) => {
      markAsync(async () => {
        await macrotask()
        order.push('outer done')
        markAsync(async () => {
          await macrotask()
          order.push('inner done')
          if (username === 'mallory') {
            throw new Error('the inner check failed')
          }
          if (username === 'eve') {
            reject('eve is refused late')
          }
        })
      })
    })
    const client = await inject(app)
    client.requestLink('mallory')
    t.strictSame(await client.take(1), [frames.rejected('authentication failed')])
    client.requestLink('eve')
    t.strictSame(await client.take(1), [frames.rejected('eve is refused late')])
    client.requestLink('alice')
    t.strictSame(await client.take(3), [frames.accepted, frames.joined('alice'), frames.linked('alice')])
    t.strictSame(order, ['outer done', 'inner done', 'outer done', 'inner done', 'outer done', 'inner done'])
    await nextMacrotask()
    t.strictSame(rejections, [])
  })

  t.test('markAsync or reject called after the link was accepted undo the link (fail closed); the late handler is never run', async t => {
    const rejections = unhandledRejections(t)
    const log = new LogRecorder()
    const calls: Array<{ reject: (reason: string) => void, markAsync: MarkAsync }> = []
    const { alice: watcher, bob: late, events } = await linkedPair(t, {
      fastify: { logger: { level: 'error', stream: log.stream } },
      setup: app => app.linkServer.on('authenticate', (_username, _info, reject, markAsync) => { calls.push({ reject, markAsync }) })
    })

    let ran = false
    calls[1].markAsync(async () => {
      ran = true
      throw new Error('would have been unhandled')
    })
    t.strictSame(await late.take(1), [frames.unlinked('bob')])
    t.strictSame(await watcher.take(1), [frames.unlinked('bob')])
    t.equal(ran, false)
    t.strictSame(events, [['unlink', 'bob']])

    // A second late call finds the user unlinked already, so it is only logged; so is one of an earlier link once the user linked again.
    calls[1].reject('too late')
    late.requestLink('bob')
    t.strictSame(await late.take(5), [frames.accepted, frames.joined('alice'), frames.linked('alice'), frames.joined('bob'), frames.linked('bob')])
    calls[1].reject('the first link is over')
    t.strictSame(await late.settle(), [], 'a late call of an earlier link does not end a later one')
    calls[2].reject('late for the current link')
    t.strictSame(await late.take(1), [frames.unlinked('bob')])
    t.strictSame((await log.count(4)).map(line => [line.level, line.msg, line.username, line.call]), [
      [50, 'markAsync was called after the link was accepted; the user is unlinked', 'bob', 'markAsync'],
      [50, 'reject was called after the link was decided; it is ignored', 'bob', 'reject'],
      [50, 'reject was called after the link was decided; it is ignored', 'bob', 'reject'],
      [50, 'reject was called after the link was accepted; the user is unlinked', 'bob', 'reject']
    ])
    await nextMacrotask()
    t.strictSame(rejections, [])
  })

  t.test('a markAsync handler pending when its link is cancelled (the connection closed) may call markAsync without effect', async t => {
    const rejections = unhandledRejections(t)
    const app = await build(t)
    let release!: () => void
    let innerRan = false
    app.linkServer.on('authenticate', (_username, _info, _reject, markAsync) => {
      markAsync(async () => {
        await new Promise<void>(resolve => { release = resolve })
        markAsync(async () => { innerRan = true })
      })
    })
    const client = await inject(app)
    client.requestLink('alice')
    await eventually(() => release !== undefined, () => 'authenticate was not called') // a claim may be a Redis round trip
    client.ws.terminate()
    await eventually(() => app.linkServer.getStats().connections === 0, () => JSON.stringify(app.linkServer.getStats()))
    release()
    await nextMacrotask()
    t.equal(innerRan, false)
    t.strictSame(app.linkServer.getUsers(), [])
    t.strictSame(rejections, [])
  })

  t.test('listeners and handlers that return rejected promises are logged at error, in every event, and crash nothing', async t => {
    const rejections = unhandledRejections(t)
    const log = new LogRecorder()
    const events = ['listen', 'join', 'link', 'unlink', 'leave', 'message', 'invalidMessage', 'close'] as const
    const app = await build(t, {
      listen: true,
      fastify: { logger: { level: 'error', stream: log.stream } },
      messages: { 'chat/say': Type.String() },
      setup: app => {
        for (const event of events) {
          app.linkServer.on(event, async () => {
            await macrotask()
            throw new Error(`async ${event} listener failed`)
          })
        }
        app.linkServer.handle('chat/say', async () => { throw new Error('async handler failed') })
      }
    })
    const alice = await inject(app)
    await alice.linked('alice', 3)
    alice.send({ type: 'chat/say', payload: 'hi' })
    alice.send({ type: 'chat/say', payload: 42 })
    alice.send({ type: 'krmx/leave' })
    t.strictSame(await alice.take(2), [frames.unlinked('alice'), frames.left('alice')])
    await app.close()
    const lines = await log.count(9)
    t.strictSame(lines.map(line => [line.level, line.msg, line.event, line.type, (line.err as { message: string }).message]).sort(), [
      [50, 'a link server listener threw', 'close', undefined, 'async close listener failed'],
      [50, 'a link server listener threw', 'invalidMessage', undefined, 'async invalidMessage listener failed'],
      [50, 'a link server listener threw', 'join', undefined, 'async join listener failed'],
      [50, 'a link server listener threw', 'leave', undefined, 'async leave listener failed'],
      [50, 'a link server listener threw', 'link', undefined, 'async link listener failed'],
      [50, 'a link server listener threw', 'listen', undefined, 'async listen listener failed'],
      [50, 'a link server listener threw', 'message', undefined, 'async message listener failed'],
      [50, 'a link server listener threw', 'unlink', undefined, 'async unlink listener failed'],
      [50, 'a message handler threw', 'message', 'chat/say', 'async handler failed']
    ].sort())
    await nextMacrotask()
    t.strictSame(rejections, [])
  })
}
