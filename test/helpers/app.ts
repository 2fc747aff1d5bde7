import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify'
import type { Test } from 'tap'
import fastifyLinkServer, { type LinkServerOptions } from '../../index.js'
import { cutInjected, inject } from './clients.js'
import { record } from './events.js'

export interface BuildOptions extends LinkServerOptions {
  /** Called after the plugin is registered, before the instance is ready. */
  setup?: (app: FastifyInstance) => void
  /** Bind a real loopback port. */
  listen?: boolean
  fastify?: FastifyServerOptions
}

/**
 * The backend the instances of a test run on, a parameter of the protocol suites (test/protocol/): the
 * in-memory default, or a one-node cluster on a real Redis (`onRedis`), each instance in a namespace of its own.
 */
export class TestBackend {
  readonly name: string
  readonly #redis: string | undefined
  #namespaces = 0

  constructor (name: string, redis: string | undefined) {
    this.name = name
    this.#redis = redis
  }

  /** A ready Fastify instance with the plugin registered, closed when the test ends. */
  readonly build = async (t: Test, options: BuildOptions = {}): Promise<FastifyInstance> => {
    const { setup, listen, fastify, ...pluginOptions } = options
    const app = Fastify(fastify)
    const cluster = this.#redis === undefined ? {} : { cluster: { redis: this.#redis, namespace: `protocol-${process.pid}-${++this.#namespaces}` } }
    await app.register(fastifyLinkServer, { pingIntervalMilliseconds: 0, linkTimeoutMilliseconds: 0, ...cluster, ...pluginOptions })
    setup?.(app)
    t.teardown(async () => {
      cutInjected(app)
      await app.close()
    })
    if (listen === true) {
      await app.listen({ port: 0, host: '127.0.0.1' })
    } else {
      await app.ready()
    }
    return app
  }

  /** A ready instance with alice and bob linked, each having read every frame so far, and a recorder started after. */
  readonly linkedPair = async (t: Test, options: BuildOptions = {}) => {
    const app = await this.build(t, options)
    const alice = await inject(app)
    await alice.linked('alice', 3)
    const bob = await inject(app)
    await bob.linked('bob', 5)
    await alice.take(2)
    return { app, alice, bob, events: record(app) }
  }

  /** Skips a test of what only the in-memory backend shows (`reason`), on a cluster. */
  readonly memoryOnly = (reason = 'counts the timers of the process, which the Redis client adds to'): { skip: string | false } => {
    return { skip: this.#redis === undefined ? false : reason }
  }
}

/** The in-memory backend, the default. */
export const inMemory = new TestBackend('in memory', undefined)

/** A one-node cluster on the Redis at `url`. */
export function onRedis (url: string): TestBackend {
  return new TestBackend('on Redis', url)
}

export const { build, linkedPair } = inMemory
