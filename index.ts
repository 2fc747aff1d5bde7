import type { AddressInfo } from 'node:net'
import websocket from '@fastify/websocket'
import type { FastifyBaseLogger, FastifyInstance, FastifyPluginAsync } from 'fastify'
import fp from 'fastify-plugin'
import type { LinkSchemas, LinkServer, LinkServerOptions } from './types/index.js'
import type { Backend } from './lib/backend/backend.js'
import { MemoryBackend } from './lib/backend/memory.js'
import { LinkServerImpl } from './lib/link-server.js'
import { type ResolvedClusterOptions, type ResolvedMetrics, type ResolvedOptions, resolveOptions } from './lib/options/resolve.js'
import { FST_LINK_ALREADY_REGISTERED } from './lib/errors.js'
import { logName } from './lib/transport/connection.js'
import { acceptInjectedVersion } from './lib/transport/upgrade.js'

async function fastifyLinkServer (fastify: FastifyInstance, options: LinkServerOptions): Promise<void> {
  if (fastify.hasDecorator('linkServer')) {
    throw new FST_LINK_ALREADY_REGISTERED(fastify.prefix === '' ? '/' : fastify.prefix)
  }
  const resolved = resolveOptions(options)
  const address = fastify.prefix === '' || resolved.path !== '/' ? fastify.prefix + resolved.path : fastify.prefix
  const log = fastify.log.child({ name: logName })
  // The Redis backend, and ioredis with it, is loaded only in cluster mode.
  const backend = resolved.cluster === undefined
    ? new MemoryBackend(resolved.sessions)
    : await loadRedisBackend(resolved, fastify.initialConfig.pluginTimeout as number, log)
  const linkServer = new LinkServerImpl(resolved, log, address, backend)
  fastify.decorate('linkServer', linkServer as LinkServer<LinkSchemas> as LinkServer)
  if (resolved.metrics !== undefined) {
    await serveMetrics(fastify, resolved.metrics, linkServer, resolved.cluster !== undefined)
  }
  if (resolved.healthPath !== undefined) {
    serveHealth(fastify, resolved.healthPath, linkServer)
  }

  // Added before @fastify/websocket's own preClose, so that every user is told it left before any socket closes.
  fastify.addHook('preClose', async () => linkServer.close(fastify.websocketServer.clients))
  if (!fastify.hasDecorator('websocketServer')) {
    // The link server listens to its sockets' errors itself (see lib/upgrade.ts); ws closes a socket after a protocol error.
    await fastify.register(websocket, { options: { maxPayload: resolved.maxPayload } })
  }
  fastify.addHook('onReady', async () => linkServer.ready())
  fastify.addHook('onListen', async function () {
    linkServer.listening(this.server.address() as AddressInfo)
  })
  fastify.addHook('onClose', async () => linkServer.closed())

  fastify.get(resolved.path, {
    websocket: true,
    preHandler: (request, reply, done) => {
      acceptInjectedVersion(request.raw.headers)
      linkServer.admit(request, reply, done)
    }
  }, (socket, request) => linkServer.accept(socket, request))
  if (resolved.asyncapiPath !== undefined) {
    fastify.get(resolved.asyncapiPath, async () => linkServer.asyncapi())
  }
}

/** Registers the metrics (prom-client is loaded only here), and serves them when they have a path. */
async function serveMetrics (fastify: FastifyInstance, options: ResolvedMetrics, linkServer: LinkServerImpl, isCluster: boolean): Promise<void> {
  const { createMetrics } = await import('./lib/metrics.js')
  const { registry, observer, remove } = await createMetrics(options.registry, linkServer.metricsSource, isCluster)
  linkServer.observeWith(observer)
  fastify.addHook('onClose', async () => remove()) // a registry of the application's may serve a link server again
  if (options.path !== undefined) {
    fastify.get(options.path, async (_request, reply) => {
      reply.type(registry.contentType)
      return registry.metrics()
    })
  }
}

/** `<path>/live`: the process serves; `<path>/ready`: the link server takes links (and its cluster's Redis answers). */
function serveHealth (fastify: FastifyInstance, path: string, linkServer: LinkServerImpl): void {
  const base = path.endsWith('/') ? path.slice(0, -1) : path
  fastify.get(`${base}/live`, async () => ({ status: 'live' }))
  fastify.get(`${base}/ready`, async (_request, reply) => {
    const reason = linkServer.notReadyReason()
    if (reason === undefined) {
      return { status: 'ready' }
    }
    reply.code(503)
    return { status: 'not ready', reason }
  })
}

async function loadRedisBackend (options: ResolvedOptions, pluginTimeout: number, log: FastifyBaseLogger): Promise<Backend> {
  const { connectTimeoutFor, createRedisBackend } = await import('./lib/backend/redis.js')
  const timeouts = {
    authTimeoutMilliseconds: options.authTimeoutMilliseconds,
    connectTimeoutMilliseconds: connectTimeoutFor(pluginTimeout),
    sessions: options.sessions
  }
  return createRedisBackend(options.cluster as ResolvedClusterOptions, timeouts, log)
}

const plugin: FastifyPluginAsync<LinkServerOptions> = fp(fastifyLinkServer, {
  fastify: '5.x',
  name: 'fastify-link-server'
})

export default plugin
export { plugin as fastifyLinkServer }
export { roomRegex, usernameRegex } from './lib/username.js'
export * from './lib/errors.js'
export type * from './types/index.js'
