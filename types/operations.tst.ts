import { Type } from '@sinclair/typebox'
import Fastify from 'fastify'
import { Registry } from 'prom-client'
import { expect, test } from 'tstyche'
import fastifyLinkServer, { type LinkMessage, type LinkServerOptions, type LinkUser, type MetricsRegistry } from '../index.js'
import { type LinkRejectedError, LinkTestClient, linkUser, type ProtocolFrame, type TestFrame } from '../testing.js'

const app = Fastify()

test('metrics, health and closeGraceMilliseconds take their documented shapes', () => {
  expect(app.register).type.toBeCallableWith(fastifyLinkServer, { metrics: true, health: true, closeGraceMilliseconds: 0 })
  expect(app.register).type.toBeCallableWith(fastifyLinkServer, { metrics: { path: '/internal/metrics' }, health: { path: '/status' } })
  expect(app.register).type.toBeCallableWith(fastifyLinkServer, { metrics: { registry: new Registry(), path: false } })
  expect(new Registry()).type.toBeAssignableTo<MetricsRegistry>()
  expect(app.register).type.not.toBeCallableWith(fastifyLinkServer, { metrics: { registry: {} } })
  expect(app.register).type.not.toBeCallableWith(fastifyLinkServer, { health: '/health' })
  expect(app.register).type.not.toBeCallableWith(fastifyLinkServer, { closeGraceMilliseconds: '1s' })
})

test('the test kit: linkUser and its client answer typed frames and users', async () => {
  expect(linkUser(app, 'alice', { auth: 'token', path: '/link' })).type.toBe<Promise<LinkTestClient>>()
  const client = await LinkTestClient.open(app)
  expect(client.link('alice')).type.toBe<Promise<TestFrame[]>>()
  expect(client.next('krmx/linked')).type.toBe<Promise<{ type: 'krmx/linked', payload: { username: string } }>>()
  expect(client.next('krmx/rejected')).type.toBe<Promise<{ type: 'krmx/rejected', payload: { reason: string } }>>()
  expect(client.next('anything/else')).type.toBe<Promise<LinkMessage>>()
  expect(client.users()).type.toBe<LinkUser[]>()
  expect(client.closed()).type.toBe<Promise<{ code: number, reason: string }>>()
  expect<LinkRejectedError['reason']>().type.toBe<string>()
  expect(client.link).type.not.toBeCallableWith('alice', 'a token')
  expect(client.send).type.toBeCallableWith({ type: 'any/type', payload: [1] })
  expect(client.send).type.toBeCallableWith({ type: 'krmx/unlink' })
  expect(client.send).type.not.toBeCallableWith('not a frame')
  expect(client.sendRaw).type.toBeCallableWith('not a frame')
})

test("the test kit typed by the application's options: what send takes, what next answers", async () => {
  const options = {
    path: '/tables',
    messages: { 'table/move': Type.Object({ cell: Type.Integer() }) },
    serverMessages: {
      'table/state': Type.Object({ cells: Type.Array(Type.String()) }),
      'table/over': Type.Undefined()
    },
    strictMessages: true
  } satisfies LinkServerOptions
  await app.register(fastifyLinkServer, options)
  const player = await linkUser<typeof options>(app, 'alice', { path: options.path })
  expect(player).type.toBe<LinkTestClient<typeof options>>()
  expect(player.next('table/state')).type.toBe<Promise<{ type: 'table/state', payload: { cells: string[] } }>>()
  expect(player.next('table/over')).type.toBe<Promise<{ type: 'table/over', payload?: undefined }>>()
  expect(player.next('krmx/left')).type.toBe<Promise<{ type: 'krmx/left', payload: { username: string } }>>()
  expect(player.next).type.not.toBeCallableWith('table/unknown')
  expect(player.send).type.toBeCallableWith({ type: 'table/move', payload: { cell: 4 } })
  expect(player.send).type.toBeCallableWith({ type: 'krmx/leave' })
  expect(player.send).type.not.toBeCallableWith({ type: 'table/move', payload: { cell: 'four' } })
  expect(player.send).type.not.toBeCallableWith({ type: 'chat/say', payload: { text: 'hi' } })
  expect(player.unread()).type.toBe<Array<TestFrame<typeof options>>>()
  expect<TestFrame<typeof options>>().type.toBe<ProtocolFrame | { type: 'table/state', payload: { cells: string[] } } | { type: 'table/over', payload?: undefined }>()
  const opened = await LinkTestClient.open<typeof options>(app, '/tables')
  expect(opened).type.toBe<LinkTestClient<typeof options>>()
})
