import Fastify from 'fastify'
import { Registry } from 'prom-client'
import { expect, test } from 'tstyche'
import fastifyLinkServer, { type LinkUser, type MetricsRegistry } from '../index.js'
import { type LinkRejectedError, LinkTestClient, linkUser, type TestFrame } from '../lib/testing.js'

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
  expect(client.next('krmx/linked')).type.toBe<Promise<TestFrame>>()
  expect(client.users()).type.toBe<LinkUser[]>()
  expect(client.closed()).type.toBe<Promise<{ code: number, reason: string }>>()
  expect<LinkRejectedError['reason']>().type.toBe<string>()
  expect(client.link).type.not.toBeCallableWith('alice', 'a token')
})
