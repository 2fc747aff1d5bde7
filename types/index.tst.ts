import Fastify, { type FastifyRequest } from 'fastify'
import { expect, test } from 'tstyche'
import fastifyLinkServer, {
  type AuthenticateInfo,
  type ClusterOptions,
  type LinkMessage,
  type LinkServer,
  type LinkServerOptions,
  type LinkServerStatus,
  type LinkUser,
  type LinkUserInfo,
  fastifyLinkServer as namedExport,
  usernameRegex
} from '../index.js'

const app = Fastify()

test('the plugin is the default and the named export, and takes its options', () => {
  expect(namedExport).type.toBe(fastifyLinkServer)
  expect(app.register).type.toBeCallableWith(fastifyLinkServer, { path: '/link' })
  expect(app.register).type.toBeCallableWith(fastifyLinkServer, {
    path: '/link',
    acceptNewUsers: false,
    authTimeoutMilliseconds: 5_000,
    isValidUsername: (username: string) => username.length > 1,
    pingIntervalMilliseconds: 0,
    acceptedVersions: ['0.6.x']
  })
  expect(usernameRegex).type.toBe<RegExp>()
})

test('the limits take their documented shapes', () => {
  expect(app.register).type.toBeCallableWith(fastifyLinkServer, {
    maxPayload: 1024,
    linkTimeoutMilliseconds: 0,
    maxLinkAttempts: 3,
    rateLimit: { rate: 10, burst: 20 },
    maxUsers: Infinity,
    maxConnections: 100,
    allowedOrigins: ['https://chat.example'],
    maxBufferedBytes: 1024 * 1024
  })
  expect(app.register).type.toBeCallableWith(fastifyLinkServer, { rateLimit: false })
  expect(app.register).type.toBeCallableWith(fastifyLinkServer, {
    allowedOrigins: (origin: string | undefined, request: FastifyRequest) => origin === undefined || request.headers.host === 'chat.example'
  })
  expect(app.register).type.not.toBeCallableWith(fastifyLinkServer, { rateLimit: true })
  expect(app.register).type.not.toBeCallableWith(fastifyLinkServer, { rateLimit: { rate: 10 } })
  expect(app.register).type.not.toBeCallableWith(fastifyLinkServer, { allowedOrigins: 'https://chat.example' })
  expect(app.register).type.not.toBeCallableWith(fastifyLinkServer, { maxPayload: '64k' })
})

test('cluster mode takes a URL or an ioredis client, Redis or Cluster, without ioredis in the published types', async () => {
  const { Redis, Cluster } = await import('ioredis')
  expect(app.register).type.toBeCallableWith(fastifyLinkServer, { cluster: { redis: 'redis://127.0.0.1:6379' } })
  expect(app.register).type.toBeCallableWith(fastifyLinkServer, {
    cluster: { redis: new Redis(), namespace: 'chat', nodeId: 'eu-1', nodeTimeoutMilliseconds: 5_000 }
  })
  expect(app.register).type.toBeCallableWith(fastifyLinkServer, { cluster: { redis: new Cluster([{ host: '127.0.0.1', port: 7000 }]) } })
  expect<ClusterOptions>().type.toBeAssignableFrom({ redis: 'redis://127.0.0.1' })
  expect(app.register).type.not.toBeCallableWith(fastifyLinkServer, { cluster: {} })
  expect(app.register).type.not.toBeCallableWith(fastifyLinkServer, { cluster: { redis: 6379 } })
  expect(app.register).type.not.toBeCallableWith(fastifyLinkServer, { cluster: { redis: 'redis://a', nodeTimeoutMilliseconds: '10s' } })
})

test('wrong option types are refused', () => {
  expect(app.register).type.not.toBeCallableWith(fastifyLinkServer, { path: 5 })
  expect(app.register).type.not.toBeCallableWith(fastifyLinkServer, { acceptNewUsers: 'yes' })
  expect(app.register).type.not.toBeCallableWith(fastifyLinkServer, { authTimeoutMilliseconds: '10' })
  expect(app.register).type.not.toBeCallableWith(fastifyLinkServer, { isValidUsername: (username: number) => username > 0 })
  expect(app.register).type.not.toBeCallableWith(fastifyLinkServer, { acceptedVersions: '0.6.x' })
  expect<LinkServerOptions>().type.toBeAssignableFrom({})
})

test('the decorator is typed on every Fastify instance', () => {
  expect(app.linkServer).type.toBe<LinkServer>()
  expect(app.linkServer.getUsers()).type.toBe<LinkUser[]>()
  expect(app.linkServer.getUser('alice')).type.toBe<LinkUserInfo | undefined>()
  expect(app.linkServer.isLinked('alice')).type.toBe<boolean>()
  expect(app.linkServer.getUser).type.not.toBeCallableWith(42)
  expect(app.linkServer.getStatus()).type.toBe<LinkServerStatus>()
  expect<LinkServerStatus>().type.toBe<'initializing' | 'listening' | 'closing' | 'closed'>()
  expect(app.linkServer.send('alice', { type: 'chat/say', payload: { text: 'hi' } })).type.toBe<void>()
  expect(app.linkServer.broadcast({ type: 'chat/say' }, 'alice')).type.toBe<void>()
  expect(app.linkServer.send).type.not.toBeCallableWith('alice', { payload: 1 })
  expect(app.linkServer.send).type.not.toBeCallableWith('alice', 'chat/say')
  expect(app.linkServer.join).type.not.toBeCallableWith(42)
  expect(app.linkServer.kick).type.toBeCallableWith('alice')
  expect(app.linkServer.unlink).type.toBeCallableWith('alice')
  expect(app.linkServer.join('alice')).type.toBe<Promise<void>>()
  expect(app.linkServer.unlink('alice')).type.toBe<Promise<void>>()
  expect(app.linkServer.kick('alice')).type.toBe<Promise<void>>()
})

test('every event listener has its signature', () => {
  app.linkServer.on('listen', (port) => { expect(port).type.toBe<number>() })
  app.linkServer.on('close', () => {})
  app.linkServer.on('join', (username) => { expect(username).type.toBe<string>() })
  app.linkServer.on('link', (username) => { expect(username).type.toBe<string>() })
  app.linkServer.on('unlink', (username) => { expect(username).type.toBe<string>() })
  app.linkServer.once('leave', (username) => { expect(username).type.toBe<string>() })
  app.linkServer.on('message', (username, message) => {
    expect(username).type.toBe<string>()
    expect(message).type.toBe<LinkMessage>()
  })
  app.linkServer.on('authenticate', (username, info, reject, markAsync) => {
    expect(username).type.toBe<string>()
    expect(info).type.toBe<AuthenticateInfo>()
    expect(info.request).type.toBe<FastifyRequest>()
    expect(info.auth).type.toBe<string | undefined>()
    expect(info.isNewUser).type.toBe<boolean>()
    expect(reject).type.toBeCallableWith('reason')
    expect(reject).type.not.toBeCallableWith(42)
    expect(markAsync).type.toBeCallableWith(async () => {})
    expect(markAsync).type.not.toBeCallableWith(() => 'not a promise')
  })
  expect(app.linkServer.on).type.toBeCallableWith('authenticate', async (_username: string, { auth }: AuthenticateInfo) => {
    expect(auth).type.toBe<string | undefined>()
  })
  expect(app.linkServer.on).type.toBeCallableWith('join', async () => {})
  expect(app.linkServer.on).type.not.toBeCallableWith('joined', () => {})
  expect(app.linkServer.on).type.not.toBeCallableWith('join', (username: number) => username)
  expect(app.linkServer.on).type.not.toBeCallableWith('listen', (port: string) => port)
  expect(app.linkServer.off).type.toBeCallableWith('join', (username: string) => { expect(username).type.toBe<string>() })
})

test('the session options take their documented shapes; without userData, data is unknown', () => {
  expect(app.register).type.toBeCallableWith(fastifyLinkServer, {
    reconnectWindowMilliseconds: 30_000,
    replay: { maxMessages: 100, maxAgeMilliseconds: 60_000 },
    linkConflict: 'takeover'
  })
  expect(app.register).type.toBeCallableWith(fastifyLinkServer, { replay: {} })
  expect(app.register).type.not.toBeCallableWith(fastifyLinkServer, { linkConflict: 'replace' })
  expect(app.register).type.not.toBeCallableWith(fastifyLinkServer, { replay: true })
  app.linkServer.on('authenticate', (_username, info, _reject, _markAsync, attach) => {
    expect(info.isLinked).type.toBe<boolean>()
    expect(attach).type.toBeCallableWith({ anything: [1, 'two'] })
  })
  expect(app.linkServer.getUser('alice')?.data).type.toBe<unknown>()
})
