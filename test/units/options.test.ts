import { readFileSync } from 'node:fs'
import { Type } from '@sinclair/typebox'
import TypeBox1 from 'typebox'
import Fastify from 'fastify'
import t from 'tap'
import fastifyLinkServer from '../../index.js'
import { optionMinimums } from '../../lib/options/defaults.js'
import { resolveOptions } from '../../lib/options/resolve.js'
import { isValidDefaultRoom, isValidKrmxUsername } from '../../lib/username.js'

t.test('defaults', async t => {
  t.strictSame(resolveOptions({}), {
    path: '/',
    acceptNewUsers: true,
    authTimeoutMilliseconds: 10_000,
    isValidUsername: isValidKrmxUsername,
    pingIntervalMilliseconds: 15_000,
    acceptedVersions: ['0.5.x', '0.6.x'],
    messages: undefined,
    serverMessages: undefined,
    strictMessages: false,
    invalidMessage: 'drop',
    asyncapiPath: undefined,
    asyncapiInfo: { title: 'fastify-link-server', version: '0.0.0' },
    maxPayload: 65_536,
    linkTimeoutMilliseconds: 30_000,
    maxLinkAttempts: 10,
    rateLimit: { rate: 100, burst: 200 },
    maxUsers: 10_000,
    maxConnections: 10_000,
    rooms: false,
    isValidRoom: isValidDefaultRoom,
    maxRooms: Infinity,
    acceptNewRooms: true,
    isAllowedOrigin: undefined,
    maxBufferedBytes: 4_194_304,
    maxDepth: 64,
    maxQueuedFrames: 32,
    maxQueuedBytes: 131_072,
    cluster: undefined,
    sessions: { windowMilliseconds: 0, replay: undefined, takeover: false },
    metrics: undefined,
    healthPath: undefined,
    closeGraceMilliseconds: 1_000
  })
})

t.test('metrics, health and closeGraceMilliseconds: true takes the defaults; a registry of the application is not served unless a path is given', async t => {
  const registry = { registerMetric () {}, getSingleMetric () {}, removeSingleMetric () {}, metrics: async () => '', contentType: 'text/plain' }
  t.strictSame(resolveOptions({ metrics: true }).metrics, { path: '/metrics', registry: undefined })
  t.strictSame(resolveOptions({ metrics: false }).metrics, undefined)
  t.strictSame(resolveOptions({ metrics: { path: '/prometheus' } }).metrics, { path: '/prometheus', registry: undefined })
  t.strictSame(resolveOptions({ metrics: { path: false } }).metrics, { path: undefined, registry: undefined })
  t.strictSame(resolveOptions({ metrics: { registry } }).metrics, { path: undefined, registry })
  t.strictSame(resolveOptions({ metrics: { registry, path: '/metrics' } }).metrics, { path: '/metrics', registry })
  t.equal(resolveOptions({ health: true }).healthPath, '/health')
  t.equal(resolveOptions({ health: false }).healthPath, undefined)
  t.equal(resolveOptions({ health: { path: '/status' } }).healthPath, '/status')
  t.equal(resolveOptions({ closeGraceMilliseconds: 0 }).closeGraceMilliseconds, 0)
  t.equal(resolveOptions({ closeGraceMilliseconds: 5_000 }).closeGraceMilliseconds, 5_000)
})

t.test('sessions: the window, replay with its defaults (the window, or 60 s), and takeover', async t => {
  t.strictSame(resolveOptions({ replay: {} }).sessions, { windowMilliseconds: 0, replay: { maxMessages: 100, maxAgeMilliseconds: 60_000 }, takeover: false })
  t.strictSame(resolveOptions({ reconnectWindowMilliseconds: 30_000, replay: {}, linkConflict: 'takeover' }).sessions,
    { windowMilliseconds: 30_000, replay: { maxMessages: 100, maxAgeMilliseconds: 30_000 }, takeover: true })
  t.strictSame(resolveOptions({ reconnectWindowMilliseconds: 5_000, replay: { maxMessages: 3, maxAgeMilliseconds: 250 }, linkConflict: 'reject' }).sessions,
    { windowMilliseconds: 5_000, replay: { maxMessages: 3, maxAgeMilliseconds: 250 }, takeover: false })
})

t.test('cluster mode: the defaults, a URL or a client, and a random node id unless one is given', async t => {
  const resolved = resolveOptions({ cluster: { redis: 'redis://127.0.0.1:6379' } }).cluster
  t.match(resolved?.nodeId, /^[0-9a-f-]{36}$/)
  t.strictSame({ ...resolved, nodeId: 'random' }, { redis: 'redis://127.0.0.1:6379', namespace: 'fastify-link-server', nodeId: 'random', nodeTimeoutMilliseconds: 10_000, rooms: false })
  t.not(resolveOptions({ cluster: { redis: 'redis://a' } }).cluster?.nodeId, resolved?.nodeId, 'each instance gets its own id')
  const client = { duplicate: () => client, status: 'ready' }
  t.strictSame(resolveOptions({ cluster: { redis: client, namespace: 'chat.v2', nodeId: 'eu-1:a', nodeTimeoutMilliseconds: 500 } }).cluster,
    { redis: client, namespace: 'chat.v2', nodeId: 'eu-1:a', nodeTimeoutMilliseconds: 500, rooms: false })
  t.equal(resolveOptions({ path: '/t/:room', cluster: { redis: 'redis://a' } }).cluster?.rooms, true, 'rooms on: each room under a hash tag of its own')
  t.equal(resolveOptions({ cluster: { redis: 'rediss://secure.example:6380/2' } }).cluster?.redis, 'rediss://secure.example:6380/2')
})

t.test('the limits: 0 turns the link timeout and the link attempts off, false the rate limit; Infinity lifts the counts', async t => {
  const resolved = resolveOptions({
    maxPayload: 1024,
    linkTimeoutMilliseconds: 0,
    maxLinkAttempts: 0,
    rateLimit: false,
    maxUsers: Infinity,
    maxConnections: 5,
    maxBufferedBytes: Infinity
  })
  t.strictSame(
    [resolved.maxPayload, resolved.linkTimeoutMilliseconds, resolved.maxLinkAttempts, resolved.rateLimit, resolved.maxUsers, resolved.maxConnections, resolved.maxBufferedBytes],
    [1024, 0, Infinity, undefined, Infinity, 5, Infinity]
  )
  t.strictSame(resolveOptions({ linkTimeoutMilliseconds: 500, maxLinkAttempts: 3, rateLimit: { rate: 0.5, burst: 2 } }).rateLimit, { rate: 0.5, burst: 2 })
  t.equal(resolveOptions({ linkTimeoutMilliseconds: 500 }).linkTimeoutMilliseconds, 500)
  const longest = resolveOptions({ linkTimeoutMilliseconds: 2 ** 31 - 1, authTimeoutMilliseconds: 2 ** 31 - 1, pingIntervalMilliseconds: 2 ** 31 - 1 })
  t.strictSame(
    [longest.linkTimeoutMilliseconds, longest.authTimeoutMilliseconds, longest.pingIntervalMilliseconds],
    [2_147_483_647, 2_147_483_647, 2_147_483_647],
    'the longest delay a timer keeps is accepted by each of the three timers'
  )
  t.equal(resolveOptions({ maxLinkAttempts: 3 }).maxLinkAttempts, 3)
  const isAllowed = resolveOptions({ allowedOrigins: ['https://chat.example'] }).isAllowedOrigin
  t.strictSame(
    [isAllowed?.('https://chat.example', {} as never), isAllowed?.('https://evil.example', {} as never), isAllowed?.(undefined, {} as never)],
    [true, false, true]
  )
  const predicate = (origin: string | undefined): boolean => origin === 'https://a.example'
  t.equal(resolveOptions({ allowedOrigins: predicate }).isAllowedOrigin, predicate)
})

t.test('the message options are compiled once into checks by type; asyncapi sets the route and the info', async t => {
  const resolved = resolveOptions({
    messages: { 'chat/say': Type.Object({ text: Type.String() }), 'chat/typing': Type.Undefined() },
    serverMessages: { 'chat/said': Type.String() },
    strictMessages: true,
    invalidMessage: 'unlink',
    asyncapi: { path: '/asyncapi.json', info: { title: 'Chat', version: '1.2.0', description: 'A chat server' } }
  })
  t.strictSame([...resolved.messages?.keys() ?? []], ['chat/say', 'chat/typing'])
  t.equal(resolved.messages?.get('chat/say')?.Check({ text: 'hi' }), true)
  t.equal(resolved.messages?.get('chat/say')?.Check({ text: 1 }), false)
  t.equal(resolved.messages?.get('chat/typing')?.Check(undefined), true)
  t.strictSame([...resolved.serverMessages?.keys() ?? []], ['chat/said'])
  t.strictSame(
    [resolved.strictMessages, resolved.invalidMessage, resolved.asyncapiPath, resolved.asyncapiInfo],
    [true, 'unlink', '/asyncapi.json', { title: 'Chat', version: '1.2.0', description: 'A chat server' }]
  )
  t.strictSame(resolveOptions({ asyncapi: {} }).asyncapiInfo, { title: 'fastify-link-server', version: '0.0.0' })
  t.equal(resolveOptions({ asyncapi: { info: { title: 'Chat' } } }).asyncapiPath, undefined)
})

t.test('the options of register itself (prefix, logLevel, logSerializers) are not unknown options', async t => {
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(fastifyLinkServer, { pingIntervalMilliseconds: 0, logLevel: 'warn', prefix: '/ignored', logSerializers: {} } as never)
  await app.ready()
  t.equal(app.linkServer.getStatus(), 'listening')
})

t.test('the lowest values in range are kept as they are; pingIntervalMilliseconds 0 stays off', async t => {
  t.equal(resolveOptions({ authTimeoutMilliseconds: 1 }).authTimeoutMilliseconds, 1)
  t.equal(resolveOptions({ authTimeoutMilliseconds: 250 }).authTimeoutMilliseconds, 250)
  t.equal(resolveOptions({ pingIntervalMilliseconds: 0 }).pingIntervalMilliseconds, 0)
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
    [{ isValidUsername: /abc/ }, 'Invalid fastify-link-server option "isValidUsername": must be a function (username) => boolean'],
    [{ isValidRoom: 'a-z' }, 'Invalid fastify-link-server option "isValidRoom": must be a function (room) => boolean'],
    [{ maxRooms: 0 }, 'Invalid fastify-link-server option "maxRooms": must be a positive integer or Infinity'],
    [{ acceptNewRooms: 'yes' }, 'Invalid fastify-link-server option "acceptNewRooms": must be a boolean'],
    [{ acceptedVersions: '0.6.x' }, 'Invalid fastify-link-server option "acceptedVersions": must be a non-empty array of versions like "0.6.x" or "0.6.3"'],
    [{ acceptedVersions: [] }, 'Invalid fastify-link-server option "acceptedVersions": must be a non-empty array of versions like "0.6.x" or "0.6.3"'],
    [{ acceptedVersions: ['0.6'] }, 'Invalid fastify-link-server option "acceptedVersions": must be a non-empty array of versions like "0.6.x" or "0.6.3"'],
    [{ acceptedVersions: [6] }, 'Invalid fastify-link-server option "acceptedVersions": must be a non-empty array of versions like "0.6.x" or "0.6.3"'],
    [{ messages: 'chat/say' }, 'Invalid fastify-link-server option "messages": must be an object of TypeBox schemas by message type'],
    [{ serverMessages: null }, 'Invalid fastify-link-server option "serverMessages": must be an object of TypeBox schemas by message type'],
    [{ messages: [Type.String()] }, 'Invalid fastify-link-server option "messages": must be an object of TypeBox schemas by message type'],
    [{ messages: { 'krmx/link': Type.Any() } }, 'Invalid fastify-link-server option "messages["krmx/link"]": the "krmx/" prefix is reserved for the protocol'],
    [{ messages: { 'chat/say': { type: 'string' } } }, 'Invalid fastify-link-server option "messages["chat/say"]": must be a schema made with Type from @sinclair/typebox 0.34 (import { Type } from \'@sinclair/typebox\'); a plain JSON schema is not compiled'],
    [{ messages: { 'chat/say': TypeBox1.String() } }, 'Invalid fastify-link-server option "messages["chat/say"]": is a schema of TypeBox 1.x (the "typebox" package); the schemas must be made with Type from @sinclair/typebox 0.34 (import { Type } from \'@sinclair/typebox\')'],
    [{ pathh: '/typo' }, 'Invalid fastify-link-server option "pathh": is not an option of fastify-link-server; did you mean "path"?'],
    [{ maxusers: 10 }, 'Invalid fastify-link-server option "maxusers": is not an option of fastify-link-server; did you mean "maxUsers"?'],
    [{ pingIntervalMs: 10 }, 'Invalid fastify-link-server option "pingIntervalMs": is not an option of fastify-link-server; did you mean "pingIntervalMilliseconds"?'],
    [{ redis: 'redis://localhost' }, 'Invalid fastify-link-server option "redis": is an option of cluster mode: cluster: { redis: ... }'],
    [{ sessions: true }, 'Invalid fastify-link-server option "sessions": is not an option of fastify-link-server (its options: path, acceptNewUsers, authTimeoutMilliseconds, isValidUsername, pingIntervalMilliseconds, acceptedVersions, messages, serverMessages, strictMessages, invalidMessage, asyncapi, maxPayload, linkTimeoutMilliseconds, maxLinkAttempts, rateLimit, maxUsers, maxConnections, isValidRoom, maxRooms, acceptNewRooms, allowedOrigins, maxBufferedBytes, maxDepth, maxQueuedFrames, maxQueuedBytes, cluster, reconnectWindowMilliseconds, replay, linkConflict, metrics, health, closeGraceMilliseconds)'],
    [{ metrics: 'on' }, 'Invalid fastify-link-server option "metrics": must be true or an object: { path?: string | false, registry?: a prom-client Registry }'],
    [{ metrics: { port: 9090 } }, 'Invalid fastify-link-server option "metrics.port": is not a metrics option (they are: path, registry)'],
    [{ metrics: { path: 'metrics' } }, 'Invalid fastify-link-server option "metrics.path": must be a string that starts with "/"'],
    [{ metrics: { registry: {} } }, 'Invalid fastify-link-server option "metrics.registry": must be a prom-client Registry'],
    [{ metrics: { registry: null } }, 'Invalid fastify-link-server option "metrics.registry": must be a prom-client Registry'],
    [{ metrics: { registry: 'default' } }, 'Invalid fastify-link-server option "metrics.registry": must be a prom-client Registry'],
    [{ metrics: { registry: { registerMetric () {} } } }, 'Invalid fastify-link-server option "metrics.registry": must be a prom-client Registry'],
    [{ health: '/health' }, 'Invalid fastify-link-server option "health": must be true or an object: { path?: string }'],
    [{ health: { path: 'health' } }, 'Invalid fastify-link-server option "health.path": must be a string that starts with "/"'],
    [{ closeGraceMilliseconds: -1 }, 'Invalid fastify-link-server option "closeGraceMilliseconds": must be 0 or a positive number of milliseconds'],
    [{ closeGraceMilliseconds: '1000' }, 'Invalid fastify-link-server option "closeGraceMilliseconds": must be a finite number of milliseconds'],
    [{ cluster: 'redis://localhost' }, 'Invalid fastify-link-server option "cluster": must be an object with a redis URL or client'],
    [{ cluster: null }, 'Invalid fastify-link-server option "cluster": must be an object with a redis URL or client'],
    [{ cluster: [] }, 'Invalid fastify-link-server option "cluster": must be an object with a redis URL or client'],
    [{ cluster: {} }, 'Invalid fastify-link-server option "cluster.redis": must be a redis:// or rediss:// URL, or an ioredis client'],
    [{ cluster: { redis: 'localhost:6379' } }, 'Invalid fastify-link-server option "cluster.redis": must be a redis:// or rediss:// URL, or an ioredis client'],
    [{ cluster: { redis: { status: 'ready' } } }, 'Invalid fastify-link-server option "cluster.redis": must be a redis:// or rediss:// URL, or an ioredis client'],
    [{ cluster: { redis: null } }, 'Invalid fastify-link-server option "cluster.redis": must be a redis:// or rediss:// URL, or an ioredis client'],
    [{ cluster: { redis: 'redis://a', nameSpace: 'x' } }, 'Invalid fastify-link-server option "cluster.nameSpace": is not a cluster option (they are: redis, namespace, nodeId, nodeTimeoutMilliseconds)'],
    [{ cluster: { redis: 'redis://a', namespace: '{app}' } }, 'Invalid fastify-link-server option "cluster.namespace": must be 1 to 100 letters, digits or . _ : -'],
    [{ cluster: { redis: 'redis://a', namespace: '' } }, 'Invalid fastify-link-server option "cluster.namespace": must be 1 to 100 letters, digits or . _ : -'],
    [{ cluster: { redis: 'redis://a', nodeId: 'node 1' } }, 'Invalid fastify-link-server option "cluster.nodeId": must be 1 to 100 letters, digits or . _ : -'],
    [{ cluster: { redis: 'redis://a', nodeId: 7 } }, 'Invalid fastify-link-server option "cluster.nodeId": must be 1 to 100 letters, digits or . _ : -'],
    [{ cluster: { redis: 'redis://a', nodeTimeoutMilliseconds: 499 } }, 'Invalid fastify-link-server option "cluster.nodeTimeoutMilliseconds": must be at least 500 milliseconds'],
    [{ cluster: { redis: 'redis://a', nodeTimeoutMilliseconds: '10s' } }, 'Invalid fastify-link-server option "cluster.nodeTimeoutMilliseconds": must be a finite number of milliseconds'],
    [{ cluster: { redis: 'redis://a', nodeTimeoutMilliseconds: 2 ** 31 } }, 'Invalid fastify-link-server option "cluster.nodeTimeoutMilliseconds": must be at most 2147483647 milliseconds (about 24.8 days), the longest delay Node\'s timers keep'],
    [{ authTimeoutMilliseconds: 0 }, 'Invalid fastify-link-server option "authTimeoutMilliseconds": must be at least 1 millisecond'],
    [{ authTimeoutMilliseconds: -5 }, 'Invalid fastify-link-server option "authTimeoutMilliseconds": must be at least 1 millisecond'],
    [{ pingIntervalMilliseconds: 50 }, 'Invalid fastify-link-server option "pingIntervalMilliseconds": must be 0 (off) or at least 100 milliseconds'],
    [{ pingIntervalMilliseconds: -1 }, 'Invalid fastify-link-server option "pingIntervalMilliseconds": must be 0 (off) or at least 100 milliseconds'],
    [{ serverMessages: { 'chat/said': Type.Object({ at: Type.Date() }) } }, 'Invalid fastify-link-server option "serverMessages["chat/said"]": Type.Date() is not a JSON value; a type without a payload is Type.Undefined()'],
    [{ messages: { 'chat/say': Type.Object({ text: Type.Optional(Type.Undefined()) }) } }, 'Invalid fastify-link-server option "messages["chat/say"]": Type.Undefined() is not a JSON value; a type without a payload is Type.Undefined()'],
    [{ messages: { ping: Type.Void() } }, 'Invalid fastify-link-server option "messages["ping"]": Type.Void() is not a JSON value; a type without a payload is Type.Undefined()'],
    [{ messages: { 'chat/say': Type.Ref('Text') } }, 'Invalid fastify-link-server option "messages["chat/say"]": does not compile: Unable to dereference schema with $id \'Text\''],
    [{ strictMessages: 'yes' }, 'Invalid fastify-link-server option "strictMessages": must be a boolean'],
    [{ invalidMessage: 'close' }, 'Invalid fastify-link-server option "invalidMessage": must be "drop" or "unlink"'],
    [{ invalidMessage: 1 }, 'Invalid fastify-link-server option "invalidMessage": must be "drop" or "unlink"'],
    [{ asyncapi: true }, 'Invalid fastify-link-server option "asyncapi": must be an object { path?, info? }'],
    [{ asyncapi: null }, 'Invalid fastify-link-server option "asyncapi": must be an object { path?, info? }'],
    [{ asyncapi: { path: 'asyncapi.json' } }, 'Invalid fastify-link-server option "asyncapi.path": must be a string that starts with "/"'],
    [{ asyncapi: { info: 'Chat' } }, 'Invalid fastify-link-server option "asyncapi.info": must be an object { title?, version?, description? }'],
    [{ asyncapi: { info: null } }, 'Invalid fastify-link-server option "asyncapi.info": must be an object { title?, version?, description? }'],
    [{ asyncapi: { info: { title: '' } } }, 'Invalid fastify-link-server option "asyncapi.info.title": must be a non-empty string'],
    [{ asyncapi: { info: { version: 1 } } }, 'Invalid fastify-link-server option "asyncapi.info.version": must be a non-empty string'],
    [{ asyncapi: { info: { description: false } } }, 'Invalid fastify-link-server option "asyncapi.info.description": must be a non-empty string'],
    [{ maxPayload: 0 }, 'Invalid fastify-link-server option "maxPayload": must be a positive integer'],
    [{ maxPayload: Infinity }, 'Invalid fastify-link-server option "maxPayload": must be a positive integer'],
    [{ maxPayload: '64k' }, 'Invalid fastify-link-server option "maxPayload": must be a positive integer'],
    [{ maxUsers: 1.5 }, 'Invalid fastify-link-server option "maxUsers": must be a positive integer or Infinity'],
    [{ maxConnections: -1 }, 'Invalid fastify-link-server option "maxConnections": must be a positive integer or Infinity'],
    [{ maxBufferedBytes: Number.NaN }, 'Invalid fastify-link-server option "maxBufferedBytes": must be a positive integer or Infinity'],
    [{ linkTimeoutMilliseconds: -5 }, 'Invalid fastify-link-server option "linkTimeoutMilliseconds": must be 0 (off) or a positive integer'],
    [{ maxLinkAttempts: 2.5 }, 'Invalid fastify-link-server option "maxLinkAttempts": must be 0 (off) or a positive integer'],
    [{ maxLinkAttempts: '3' }, 'Invalid fastify-link-server option "maxLinkAttempts": must be 0 (off) or a positive integer'],
    [{ rateLimit: true }, 'Invalid fastify-link-server option "rateLimit": must be false or { rate: frames per second > 0, burst: integer >= 1 }'],
    [{ rateLimit: null }, 'Invalid fastify-link-server option "rateLimit": must be false or { rate: frames per second > 0, burst: integer >= 1 }'],
    [{ rateLimit: { rate: 0, burst: 5 } }, 'Invalid fastify-link-server option "rateLimit": must be false or { rate: frames per second > 0, burst: integer >= 1 }'],
    [{ rateLimit: { rate: Infinity, burst: 5 } }, 'Invalid fastify-link-server option "rateLimit": must be false or { rate: frames per second > 0, burst: integer >= 1 }'],
    [{ rateLimit: { rate: 10, burst: 0.5 } }, 'Invalid fastify-link-server option "rateLimit": must be false or { rate: frames per second > 0, burst: integer >= 1 }'],
    [{ rateLimit: { rate: 10 } }, 'Invalid fastify-link-server option "rateLimit": must be false or { rate: frames per second > 0, burst: integer >= 1 }'],
    [{ allowedOrigins: 'https://chat.example' }, 'Invalid fastify-link-server option "allowedOrigins": must be an array of origins like "https://example.com" or a function (origin, request) => boolean'],
    [{ allowedOrigins: [42] }, 'Invalid fastify-link-server option "allowedOrigins": must be an array of origins like "https://example.com" or a function (origin, request) => boolean'],
    [{ linkTimeoutMilliseconds: 2 ** 31 }, 'Invalid fastify-link-server option "linkTimeoutMilliseconds": must be at most 2147483647 milliseconds (about 24.8 days), the longest delay Node\'s timers keep'],
    [{ authTimeoutMilliseconds: 2 ** 31 }, 'Invalid fastify-link-server option "authTimeoutMilliseconds": must be at most 2147483647 milliseconds (about 24.8 days), the longest delay Node\'s timers keep'],
    [{ pingIntervalMilliseconds: 1e12 }, 'Invalid fastify-link-server option "pingIntervalMilliseconds": must be at most 2147483647 milliseconds (about 24.8 days), the longest delay Node\'s timers keep'],
    [{ maxDepth: 0 }, 'Invalid fastify-link-server option "maxDepth": must be a positive integer'],
    [{ maxQueuedFrames: Infinity }, 'Invalid fastify-link-server option "maxQueuedFrames": must be a positive integer'],
    [{ maxQueuedBytes: '1mb' }, 'Invalid fastify-link-server option "maxQueuedBytes": must be a positive integer'],
    [{ reconnectWindowMilliseconds: -1 }, 'Invalid fastify-link-server option "reconnectWindowMilliseconds": must be 0 (off) or a positive number of milliseconds'],
    [{ reconnectWindowMilliseconds: '30s' }, 'Invalid fastify-link-server option "reconnectWindowMilliseconds": must be a finite number of milliseconds'],
    [{ reconnectWindowMilliseconds: 2 ** 31 }, 'Invalid fastify-link-server option "reconnectWindowMilliseconds": must be at most 2147483647 milliseconds (about 24.8 days), the longest delay Node\'s timers keep'],
    [{ linkConflict: 'replace' }, 'Invalid fastify-link-server option "linkConflict": must be \'reject\' or \'takeover\''],
    [{ replay: true }, 'Invalid fastify-link-server option "replay": must be an object: { maxMessages?, maxAgeMilliseconds? }'],
    [{ replay: [] }, 'Invalid fastify-link-server option "replay": must be an object: { maxMessages?, maxAgeMilliseconds? }'],
    [{ replay: { maxMessage: 5 } }, 'Invalid fastify-link-server option "replay.maxMessage": is not a replay option (they are: maxMessages, maxAgeMilliseconds)'],
    [{ replay: { maxMessages: 0 } }, 'Invalid fastify-link-server option "replay.maxMessages": must be a positive integer'],
    [{ replay: { maxAgeMilliseconds: 0 } }, 'Invalid fastify-link-server option "replay.maxAgeMilliseconds": must be at least 1 millisecond'],
    [{ replay: { maxAgeMilliseconds: Infinity } }, 'Invalid fastify-link-server option "replay.maxAgeMilliseconds": must be a finite number of milliseconds']
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

/** The row of `option` in the options table of a page: `| \`option\` | ... |`. */
function rowOf (page: string, option: string): string {
  const text = readFileSync(new URL(`../../${page}`, import.meta.url), 'utf8')
  return text.split('\n').find(line => line.startsWith(`| \`${option}\` |`)) ?? `no row of ${option} in ${page}`
}

t.test('one truth: the least value of each option is what registration enforces and what the README and guides say', async t => {
  const pageOf = (name: string) => name.startsWith('cluster.') ? 'docs/scaling-out.md' : 'README.md'
  const optionsWith = (name: string, value: number) => name.startsWith('cluster.')
    ? { cluster: { redis: 'redis://127.0.0.1:6379', [name.slice('cluster.'.length)]: value } }
    : { [name]: value }
  const refusal = (name: string, value: number) => {
    try {
      resolveOptions(optionsWith(name, value))
      return 'accepted'
    } catch (err) {
      return (err as { code: string }).code
    }
  }
  t.strictSame(Object.keys(optionMinimums), ['authTimeoutMilliseconds', 'pingIntervalMilliseconds', 'cluster.nodeTimeoutMilliseconds'])
  for (const [name, minimum] of Object.entries(optionMinimums)) {
    const below = name === 'pingIntervalMilliseconds' ? [1, minimum - 1] : [minimum - 1]
    t.strictSame([refusal(name, minimum), ...below.map(value => refusal(name, value))], ['accepted', ...below.map(() => 'FST_LINK_INVALID_OPTION')],
      `${name}: ${minimum} is accepted, less is refused`)
    t.match(rowOf(pageOf(name), name.replace('cluster.', '')), new RegExp(`at least ${minimum}\\b`), `${pageOf(name)} says ${name} is at least ${minimum}`)
  }
  t.equal(refusal('pingIntervalMilliseconds', 0), 'accepted', 'a ping interval of 0 turns the heartbeat off')
  t.match(rowOf('README.md', 'pingIntervalMilliseconds'), '`0` turns the heartbeat off')
  t.notMatch(readFileSync(new URL('../../README.md', import.meta.url), 'utf8'), /\bbecomes?\b \d/, 'the README promises no value that becomes another')
})
