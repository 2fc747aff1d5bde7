// The programs of the application the package check installs the package into, as that application's own files.

/** A strict application's compiler options: skipLibCheck false, so that every declaration it loads is checked. */
export const strictConfig = {
  compilerOptions: {
    strict: true,
    skipLibCheck: false,
    module: 'NodeNext',
    moduleResolution: 'NodeNext',
    target: 'ES2022',
    types: ['node'],
    rootDir: '.',
    outDir: 'out'
  }
}

/** injectWS and request.ws of @fastify/websocket, through the plugin alone, and the test kit; prints what it saw. */
export const minimalApp = `import Fastify from 'fastify'
import fastifyLinkServer from 'fastify-link-server'
import { createLinkClient } from 'fastify-link-server/client'
import { LinkTestClient, linkClient, linkUser } from 'fastify-link-server/testing'
import WebSocket from 'ws'

const app = Fastify()
await app.register(fastifyLinkServer, { path: '/link', pingIntervalMilliseconds: 0 })
let upgrades = 0
app.addHook('onRequest', async (request) => { // after the plugin, whose @fastify/websocket sets request.ws
  if (request.ws) upgrades++
})
await app.ready()
const socket = await app.injectWS('/link')
const injected = new LinkTestClient(socket)
const [accepted] = await injected.link('alice')
const bob = await linkUser(app, 'bob', { path: '/link' })
const linked = await injected.next('krmx/linked')
const seen = { injected: accepted.type, upgrades, linked, users: bob.users() }
const dave = await linkClient(app, 'dave', { path: '/link' }) // the client, over injectWS
await app.listen({ port: 0, host: '127.0.0.1' })
const carol = createLinkClient(\`ws://127.0.0.1:\${(app.server.address() as { port: number }).port}/link\`, { WebSocket })
const client = await carol.link('carol') // the client, on a real socket, with ws' WebSocket
console.log(JSON.stringify({ ...seen, client }))
carol.leave()
dave.close()
injected.close()
bob.close()
await app.close()
`

/**
 * One instance in cluster mode on REDIS_URL (ioredis loaded by the plugin, from a URL); links alice and prints what
 * it saw. It does not import ioredis itself: ioredis' own declarations fail skipLibCheck false (redis-errors has none).
 */
export const clusterApp = `import { createRequire } from 'node:module'
import Fastify from 'fastify'
import fastifyLinkServer from 'fastify-link-server'
import { LinkTestClient } from 'fastify-link-server/testing'

const url = process.env.REDIS_URL as string
const app = Fastify()
await app.register(fastifyLinkServer, { pingIntervalMilliseconds: 0, cluster: { redis: url, namespace: 'package-check' } })
await app.ready()
const alice = await LinkTestClient.open(app)
const frames = await alice.link('alice')
const { version } = createRequire(import.meta.url)('ioredis/package.json') as { version: string }
console.log(JSON.stringify({ ioredis: version, frames, users: app.linkServer.getUsers() }))
await app.close()
`
