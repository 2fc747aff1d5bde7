import { once } from 'node:events'
import { performance } from 'node:perf_hooks'
import type { FastifyBaseLogger } from 'fastify'
import type { Cluster, Redis } from 'ioredis'
import type { ClusterRedisClient } from '../../../types/index.js'
import type { ResolvedClusterOptions } from '../../options/resolve.js'
import { scripts, type ScriptName } from './scripts.js'

/** How long `ready()` waits for Redis before it fails, at most; less when Fastify's `pluginTimeout` (which bounds `onReady`) is shorter. */
export const maxConnectTimeoutMilliseconds = 15_000
/** The connect timeout under a Fastify `pluginTimeout` (0: none): one second less, so that the coded error wins the race. */
export function connectTimeoutFor (pluginTimeout: number): number {
  return pluginTimeout > 0 ? Math.max(100, Math.min(maxConnectTimeoutMilliseconds, pluginTimeout - 1_000)) : maxConnectTimeoutMilliseconds
}
/** A command that takes longer than this fails, so that a hung Redis is an outage, not a hang. */
export const commandTimeoutMilliseconds = 2_000
/** How long a node may take, beyond a command's timeout, to apply the records up to a sequence number it read. */
export const catchUpMilliseconds = 1_000
/** How long a node that stops waits for the sockets of its connections to close. */
const disconnectMilliseconds = 2_500
/** How soon a lost connection to Redis is tried again. */
export const reconnectMilliseconds = 200

/** The ioredis module, as `import('ioredis')` gives it. */
export interface IoredisModule {
  Redis: new (url: string, options: Record<string, unknown>) => Redis
}

export type ScriptReply = Array<string | number | null | ScriptReply>
type Client = (Redis | Cluster) & Record<ScriptName, (key: string, ...args: Array<string | number>) => Promise<ScriptReply>>

/** The `keyPrefix` of an application's ioredis client (`Redis`, or `Cluster`), or `''`: a URL or a client without one. */
export function keyPrefixOf (redis: string | ClusterRedisClient): string {
  if (typeof redis === 'string') {
    return ''
  }
  const prefix = (redis as { options?: { keyPrefix?: unknown } }).options?.keyPrefix
  return typeof prefix === 'string' || Buffer.isBuffer(prefix) ? prefix.toString() : ''
}

/**
 * This node's three connections to Redis (commands and scripts; the subscriber of messages; the subscriber of the
 * log), and the names of the node's own keys and channel. The keys of a user space are its `RedisSpace`'s.
 */
export class RedisConnections {
  /** `{namespace}`, after the `keyPrefix` of the application's client if it has one: what the node's keys and channels start with. */
  readonly prefix: string
  /** Set when the node stops: the loops end, and nothing is tried again. */
  stopped = false
  /** With metrics on: observes a script's round trip. */
  roundTrip: ((script: string, seconds: number) => void) | undefined
  commands!: Client
  subscriber!: Redis | Cluster
  reader!: Redis | Cluster
  /** The channels of messages (broadcasts, and to this node's users) of the rooms this node serves. */
  messages!: Subscriptions
  /** The channels of the logs of the rooms this node serves. */
  logs!: Subscriptions
  readonly #options: ResolvedClusterOptions
  readonly #ioredis: IoredisModule
  readonly #log: FastifyBaseLogger

  constructor (options: ResolvedClusterOptions, ioredis: IoredisModule, log: FastifyBaseLogger) {
    this.#options = options
    this.#ioredis = ioredis
    this.#log = log
    // An application's client with a keyPrefix isolates its keys under it: ours go there too. The duplicates
    // are made without it (see #connect), since scripts build their key names from the prefix themselves.
    this.prefix = `${keyPrefixOf(options.redis)}{${options.namespace}}`
  }

  /**
   * What the keys and channels of room `name` start with: with rooms on, a hash tag of the room's own, `{namespace:room}`,
   * so that the rooms spread over the shards of a Redis Cluster; with rooms off, the namespace's, `{namespace}`.
   */
  prefixOf (name: string): string {
    return this.#options.rooms ? `${keyPrefixOf(this.#options.redis)}{${this.#options.namespace}:${name}}` : this.prefix
  }

  /** Opens the connections, named so that CLIENT LIST shows which node and which part of it each one is. */
  open (): Array<Redis | Cluster> {
    const name = `fastify-link-server:${this.#options.nodeId}`
    this.commands = this.#connect({ commandTimeout: commandTimeoutMilliseconds, connectionName: `${name}:commands` }) as Client
    // The bus subscribes again itself after a reconnection: ioredis' own resubscription leaves its failure unhandled
    // (a crash) and the node deaf to the cluster.
    this.subscriber = this.#connect({ connectionName: `${name}:subscriber`, autoResubscribe: false })
    this.reader = this.#connect({ connectionName: `${name}:reader`, autoResubscribe: false })
    this.messages = new Subscriptions(this.subscriber, this.#log)
    this.logs = new Subscriptions(this.reader, this.#log)
    for (const [name, lua] of Object.entries(scripts)) {
      this.commands.defineCommand(name, { numberOfKeys: 1, lua })
    }
    return [this.commands, this.subscriber, this.reader]
  }

  /** A connection of this node's own: a duplicate of the application's client, or a new client of the URL. */
  #connect (override: Record<string, unknown>): Redis | Cluster {
    const options = { ...override, enableOfflineQueue: false, lazyConnect: false, retryStrategy: reconnect, maxRetriesPerRequest: 0 }
    const redis = this.#options.redis
    if (typeof redis === 'string') {
      const client = new this.#ioredis.Redis(redis, options)
      client.on('error', () => {}) // every failure is answered where a command fails; ioredis reconnects
      return client
    }
    const base = redis as unknown as (Redis | Cluster) & { isCluster: boolean }
    const client = base.isCluster
      ? (base as Cluster).duplicate([], { enableOfflineQueue: false, clusterRetryStrategy: reconnect, keyPrefix: '', redisOptions: { ...override, maxRetriesPerRequest: 0 } })
      : (base as Redis).duplicate({ ...options, keyPrefix: '' })
    client.on('error', () => {})
    return client
  }

  /** A script's reply; with metrics on, its round trip is observed, a failed one's too (a timeout is one). */
  timed<T> (name: ScriptName, reply: Promise<T>): Promise<T> {
    const observe = this.roundTrip
    if (observe !== undefined) {
      const start = performance.now()
      const observed = (): void => observe(name, (performance.now() - start) / 1000)
      reply.then(observed, observed)
    }
    return reply
  }

  /**
   * Runs `command`, and again after each failure while a cut connection comes back, until it answers or `deadline`
   * passes (or the node stops); answers its answer, or `undefined` when it gave up.
   */
  async whileReconnecting<T> (command: () => Promise<T>, deadline: number): Promise<T | undefined> {
    for (;;) {
      const result = await command().then(answer => ({ answer }), () => undefined)
      if (result !== undefined) {
        return result.answer
      }
      if (performance.now() >= deadline || this.stopped) {
        return undefined
      }
      await delay(reconnectMilliseconds)
    }
  }

  /** Waits until every connection is ready; rejects at once when Redis refuses the credentials, or after `timeoutMilliseconds`. */
  async ready (clients: Array<Redis | Cluster>, timeoutMilliseconds: number): Promise<void> {
    const refused = refusedCredentials(clients)
    try {
      await withTimeout(Promise.race([Promise.all(clients.map(ready)), refused.promise]), timeoutMilliseconds,
        `Redis did not answer within ${timeoutMilliseconds} ms`)
    } finally {
      refused.stop()
    }
  }

  /**
   * Closes the connections; resolves when their sockets are closed (ioredis waits up to 2 s for a socket to close
   * before it destroys it), so that nothing of them outlives the node.
   */
  async disconnect (): Promise<void> {
    await Promise.all([this.commands, this.subscriber, this.reader].map(async client => {
      // A connection with a socket ends when the socket closes; one between two tries to connect has none, and ends at once.
      const ended = ['connecting', 'connect', 'ready'].includes(client.status) ? once(client, 'end') : undefined
      client.disconnect()
      await withTimeout(Promise.resolve(ended), disconnectMilliseconds, 'a connection did not end').catch(() => {})
    }))
  }
}

/** What a subscription hears: its messages, and that it was made (again, after a reconnection: what was missed meanwhile is read). */
interface Subscription {
  message: (message: string) => void
  subscribed: () => void
}

/**
 * The channels one connection is subscribed to, each with its listener: channels are added and removed as rooms are
 * served and given up, and subscribed to again each time the connection connects again (ioredis' own resubscription
 * leaves its failure unhandled, a crash, and the node deaf). A subscription that fails while the connection stays up
 * is tried again soon; one whose connection dropped is made again when it is back.
 */
export class Subscriptions {
  readonly #client: Redis | Cluster
  readonly #log: FastifyBaseLogger
  readonly #channels = new Map<string, Subscription>()

  constructor (client: Redis | Cluster, log: FastifyBaseLogger) {
    this.#client = client
    this.#log = log
    client.on('message', (channel: string, message: string) => this.#channels.get(channel)?.message(message))
    client.on('ready', () => this.#subscribeAll())
  }

  /** Subscribes to `channels`; `subscribed` is called once they are subscribed to, and again after each resubscription. */
  async add (channels: Array<[string, (message: string) => void]>, subscribed: () => void = () => {}): Promise<void> {
    for (const [channel, message] of channels) {
      this.#channels.set(channel, { message, subscribed })
    }
    await this.#client.subscribe(...channels.map(([channel]) => channel))
    subscribed()
  }

  /** Unsubscribes from `channels` (a failure is of no matter: their messages find no listener). */
  remove (channels: string[]): void {
    for (const channel of channels) {
      this.#channels.delete(channel)
    }
    this.#client.unsubscribe(...channels).then(undefined, () => {})
  }

  #subscribeAll (): void {
    if (this.#channels.size === 0) {
      return
    }
    const subscriptions = [...this.#channels.values()]
    this.#client.subscribe(...this.#channels.keys()).then(() => {
      for (const subscribed of new Set(subscriptions.map(({ subscribed }) => subscribed))) {
        subscribed()
      }
    }, (err: unknown) => {
      this.#log.warn({ err }, 'could not subscribe again to the channels of the cluster; trying again')
      if ((this.#client as { status?: string }).status === 'ready') {
        setTimeout(() => this.#subscribeAll(), reconnectMilliseconds)
      }
    })
  }
}

/** The replies of Redis that refuse a connection's credentials (never naming them), by their first word. */
const credentialErrors = /^(WRONGPASS|NOAUTH|ERR AUTH|ERR invalid password|ERR Client sent AUTH)/

/**
 * Rejects when Redis refuses the credentials of one of `clients` (a wrong or missing password), so that a start
 * says so at once instead of waiting out the connect timeout; `stop` removes its listeners.
 */
function refusedCredentials (clients: Array<Redis | Cluster>): { promise: Promise<never>, stop: () => void } {
  const removals: Array<() => void> = []
  const promise = new Promise<never>((_resolve, reject) => {
    for (const client of clients) {
      const onError = (err: Error): void => {
        const code = credentialErrors.exec(err.message)?.[1]
        if (code !== undefined) {
          reject(new Error(`Redis refused the credentials (${code}): check the password, and the user, of the Redis URL or client`))
        }
      }
      client.on('error', onError)
      removals.push(() => client.off('error', onError))
    }
  })
  promise.catch(() => {}) // answered by the race in ready, or too late to matter
  return { promise, stop: () => { for (const remove of removals) remove() } }
}

/** A new connection is never ready yet: it becomes ready, or the connect timeout ends the wait. */
function ready (client: Redis | Cluster): Promise<void> {
  return new Promise(resolve => client.once('ready', () => resolve()))
}

/** The retry strategy of every connection: again soon, forever (an outage ends when Redis is back). */
function reconnect (): number {
  return reconnectMilliseconds
}

export function delay (milliseconds: number): Promise<void> {
  return new Promise(resolve => setTimeout(resolve, milliseconds))
}

export async function withTimeout<T> (promise: Promise<T>, milliseconds: number, message: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new Error(message)), milliseconds)
  })
  try {
    return await Promise.race([promise, timeout])
  } finally {
    clearTimeout(timer)
  }
}
