import { FormatRegistry, Type } from '@sinclair/typebox'
import t from 'tap'
import { isDeeperThan } from '../../lib/frames.js'
import { build } from '../helpers/app.js'
import { inject } from '../helpers/clients.js'
import { LogRecorder, record } from '../helpers/events.js'
import { frames } from '../helpers/frames.js'

/** Any JSON value, as an application would describe a document: recursive, so its compiled check recurses too. */
const Json = Type.Recursive(This => Type.Union([
  Type.Null(), Type.Boolean(), Type.Number(), Type.String(), Type.Array(This), Type.Record(Type.String(), This)
]))

/** A payload of arrays nested `depth` levels deep: 2 bytes a level. */
function nested (depth: number): string {
  return '['.repeat(depth) + ']'.repeat(depth)
}

/** The text of a `doc/put` frame whose payload is `payload` (JSON text). */
function docPut (payload: string): string {
  return `{"type":"doc/put","payload":${payload}}`
}

t.test('a recursive schema that overflows the stack on a deep payload: an invalid message, dropped; the server lives', async t => {
  const log = new LogRecorder()
  const app = await build(t, { messages: { 'doc/put': Json }, maxDepth: 100_000, fastify: { logger: { level: 'warn', stream: log.stream } } })
  const alice = await inject(app)
  await alice.linked('alice', 3)
  const events = record(app)
  alice.ws.send(docPut(nested(10_000))) // 20 KB, far below maxPayload
  alice.send({ type: 'doc/put', payload: [[1], { a: null }] })
  await alice.settle()
  t.strictSame(events.map(([event, username, message, errors]) => [event, username, (message as { type: string }).type, errors]), [
    ['invalidMessage', 'alice', 'doc/put', [{ path: '/payload', message: 'The payload could not be checked: Maximum call stack size exceeded' }]],
    ['message', 'alice', 'doc/put', undefined]
  ])
  t.strictSame(app.linkServer.getUsers(), [{ username: 'alice', isLinked: true }])
  t.strictSame((await log.count(1)).map(line => [line.level, line.msg, line.error]), [
    [40, 'user sent an invalid message; it is dropped', { path: '/payload', message: 'The payload could not be checked: Maximum call stack size exceeded' }]
  ])
})

t.test('a schema whose custom format throws, an Error or anything else: an invalid message, and the server lives', async t => {
  FormatRegistry.Set('throws-error', () => { throw new Error('format check failed') })
  // eslint-disable-next-line no-throw-literal
  FormatRegistry.Set('throws-string', () => { throw 'not an Error' })
  t.teardown(() => {
    FormatRegistry.Delete('throws-error')
    FormatRegistry.Delete('throws-string')
  })
  const app = await build(t, { messages: { 'a/b': Type.String({ format: 'throws-error' }), 'c/d': Type.String({ format: 'throws-string' }) } })
  const alice = await inject(app)
  await alice.linked('alice', 3)
  const events = record(app)
  alice.send({ type: 'a/b', payload: 'x' })
  alice.send({ type: 'c/d', payload: 'x' })
  await alice.settle()
  t.strictSame(events, [
    ['invalidMessage', 'alice', { type: 'a/b', payload: 'x' }, [{ path: '/payload', message: 'The payload could not be checked: format check failed' }]],
    ['invalidMessage', 'alice', { type: 'c/d', payload: 'x' }, [{ path: '/payload', message: 'The payload could not be checked: a non-Error was thrown' }]]
  ])
})

t.test('with invalidMessage unlink, the sender of a payload that breaks its check is unlinked', async t => {
  const app = await build(t, { messages: { 'doc/put': Json }, maxDepth: 100_000, invalidMessage: 'unlink' })
  const alice = await inject(app)
  await alice.linked('alice', 3)
  alice.ws.send(docPut(nested(10_000)))
  t.strictSame(await alice.take(1), [frames.unlinked('alice')])
})

t.test('maxDepth (default 64): a deeper application message is invalid before any schema runs, with or without a schema', async t => {
  const app = await build(t, { messages: { 'doc/put': Json } })
  const alice = await inject(app)
  await alice.linked('alice', 3)
  const events = record(app)
  alice.ws.send(docPut(nested(63))) // with the frame object: 64 levels
  alice.ws.send(docPut(nested(64))) // 65
  alice.ws.send(`{"type":"chat/untyped","payload":${nested(64)}}`)
  alice.ws.send(docPut(nested(10_000)))
  alice.send({ type: 'doc/put', payload: '['.repeat(200) + '"\\"{{{' }) // brackets and escaped quotes inside strings do not count
  await alice.settle()
  const tooDeep = [{ path: '', message: 'The message is nested deeper than 64 levels (maxDepth)' }]
  t.strictSame(events.map(([event, , message, errors]) => [event, (message as { type: string }).type, errors]), [
    ['message', 'doc/put', undefined],
    ['invalidMessage', 'doc/put', tooDeep],
    ['invalidMessage', 'chat/untyped', tooDeep],
    ['invalidMessage', 'doc/put', tooDeep],
    ['message', 'doc/put', undefined]
  ])
  t.strictSame(app.linkServer.getUsers(), [{ username: 'alice', isLinked: true }])
})

t.test('a deep frame from an unlinked connection is refused like any other', async t => {
  const app = await build(t)
  const client = await inject(app)
  client.ws.send(`{"type":"krmx/link","payload":{"username":${nested(10_000)},"version":"0.6.10"}}`)
  client.ws.send(`{"type":"chat/say","payload":${nested(10_000)}}`)
  t.strictSame(await client.take(2), [frames.rejected('invalid link request'), frames.rejected('unlinked connection')])
})

t.test('isDeeperThan counts the nesting of objects and arrays on the bytes, outside strings', async t => {
  const cases: Array<[string, number, boolean]> = [
    ['{"a":[{"b":[]}]}', 4, false],
    ['{"a":[{"b":[]}]}', 3, true],
    ['[[[["]]]]]]]]"]]]]', 4, false],
    ['[[[["\\"[[[[[[["]]]]', 4, false],
    ['["\\\\",[[[[]]]]]', 4, true],
    ['"[[[[[[[[[[[[[[[["', 1, false],
    [`[${' '.repeat(20)}]`, 1, false]
  ]
  t.strictSame(cases.map(([text, maxDepth]) => isDeeperThan(Buffer.from(text), maxDepth)), cases.map(([, , deeper]) => deeper))
})
