import { randomUUID } from 'node:crypto'
import { performance } from 'node:perf_hooks'
import type { FastifyBaseLogger } from 'fastify'
import type { Cluster, Redis } from 'ioredis'
import type { ClusterRedisClient } from '../../types/index.js'
import { leaveCauses, unlinkCauses } from '../counts.js'
import { FST_LINK_CLUSTER_UNAVAILABLE } from '../errors.js'
import type { ResolvedClusterOptions, Sessions } from '../options/resolve.js'
import { type EncodedFrame, encodeText } from '../frames.js'
import {
  type Admission,
  type Backend,
  type BackendSink,
  type Change,
  type ClaimResult,
  type Commit,
  CommitRefused,
  type LeaveCause,
  type LinkChange,
  type LinkResult,
  type Refusal,
  type Replay,
  type SnapshotUser,
  type UnlinkCause
} from './backend.js'
import {
  claimScript,
  deregisterScript,
  expireScript,
  healScript,
  heartbeatScript,
  joinScript,
  leaveScript,
  linkScript,
  postScript,
  registerScript,
  releaseScript,
  snapshotScript,
  unlinkScript,
  windowsScript,
  wireVersion
} from './redis-scripts.js'

/** How long `ready()` waits for Redis before it fails, at most; less when Fastify's `pluginTimeout` (which bounds `onReady`) is shorter. */
export const maxConnectTimeoutMilliseconds = 15_000

/** The connect timeout under a Fastify `pluginTimeout` (0: none): one second less, so that the coded error wins the race. */
export function connectTimeoutFor (pluginTimeout: number): number {
  return pluginTimeout > 0 ? Math.max(100, Math.min(maxConnectTimeoutMilliseconds, pluginTimeout - 1_000)) : maxConnectTimeoutMilliseconds
}
/** A command that takes longer than this fails, so that a hung Redis is an outage, not a hang. */
export const commandTimeoutMilliseconds = 2_000
/** How long the log reader blocks for new records before it asks again. */
const readBlockMilliseconds = 1_000
/** How long a node that closes waits for the unlinks of its users. */
const unlinkOwnTimeoutMilliseconds = 3_000
/** How soon a lost connection to Redis is tried again. */
const reconnectMilliseconds = 200
/** A claim outlives the longest authentication by this much, and then expires (its node may have died). */
const claimMarginMilliseconds = 5_000

/** The `keyPrefix` of an application's ioredis client (`Redis`, or `Cluster`), or `''`: a URL or a client without one. */
export function keyPrefixOf (redis: string | ClusterRedisClient): string {
  if (typeof redis === 'string') {
    return ''
  }
  const prefix = (redis as { options?: { keyPrefix?: unknown } }).options?.keyPrefix
  return typeof prefix === 'string' || Buffer.isBuffer(prefix) ? prefix.toString() : ''
}

/** What a node reads from Redis and refuses, never applying it: a publication of another node, a record of the log. */
export type RefusedInput = 'publication' | 'record'
/** A refusal is logged at most this often for each kind of input, with how many were refused since. */
const refusalLogMilliseconds = 1_000

/** The ioredis module, as `import('ioredis')` gives it. */
export interface IoredisModule {
  Redis: new (url: string, options: Record<string, unknown>) => Redis
}

type ScriptName = 'claim' | 'release' | 'link' | 'join' | 'unlink' | 'leave' | 'heartbeat' | 'register' | 'snapshot' | 'deregister' | 'post' | 'expire'
  | 'windows' | 'heal'
const scripts: Record<ScriptName, string> = {
  claim: claimScript,
  release: releaseScript,
  link: linkScript,
  join: joinScript,
  unlink: unlinkScript,
  leave: leaveScript,
  heartbeat: heartbeatScript,
  register: registerScript,
  snapshot: snapshotScript,
  deregister: deregisterScript,
  post: postScript,
  expire: expireScript,
  windows: windowsScript,
  heal: healScript
}

type ScriptReply = Array<string | number | null | ScriptReply>
type Client = (Redis | Cluster) & Record<ScriptName, (key: string, ...args: Array<string | number>) => Promise<ScriptReply>>

/** The timeouts the backend takes from the link server's options and Fastify's. */
export interface Timeouts {
  authTimeoutMilliseconds: number
  connectTimeoutMilliseconds: number
  sessions: Sessions
}

/** A change waiting to be applied on this node, and who waits for it. */
interface Waiter {
  seq: number
  resolve: () => void
}

/**
 * The user space of a cluster, in Redis: every node runs the same scripts against the same keys, and
 * reads the same log. See `redis-scripts.ts` for the keys and the scripts, and the README's "Scaling
 * out" for what it guarantees.
 */
export class RedisBackend implements Backend {
  readonly nodeId: string
  /** How many nodes are alive, as the last heartbeat found. */
  nodes = 1
  readonly #options: ResolvedClusterOptions
  readonly #log: FastifyBaseLogger
  readonly #ioredis: IoredisModule
  readonly #authTimeoutMilliseconds: number
  readonly #connectTimeoutMilliseconds: number
  /** `{namespace}`, after the `keyPrefix` of the application's client if it has one: what every key and channel starts with. */
  readonly #prefix: string
  readonly #seqKey: string
  readonly #logKey: string
  readonly #broadcastChannel: string
  readonly #nodeChannel: string
  readonly #heartbeatMilliseconds: number
  /** The application's client, duplicated for the three connections of this node; `undefined` for a URL. */
  readonly #base: ClusterRedisClient | undefined
  #commands!: Client
  #subscriber!: Redis | Cluster
  #reader!: Redis | Cluster
  #sink!: BackendSink
  /** The epoch of the user space this node mirrors. */
  #epoch = ''
  /** The sequence number of the last change applied here. */
  #applied = 0
  /** Whether Redis answers and the user space is recovered: links and changes are refused while it is not. */
  #available = false
  #stopped = false
  #beating: Promise<void> | undefined
  #pause: NodeJS.Timeout | undefined
  /** Resolves when the node stops, ending the wait between two heartbeats. */
  readonly #stopping: Promise<void>
  #stop!: () => void
  /** Until when (`performance.now()`) the nodes are registering their users again after Redis lost its data. */
  #recoveringUntil = 0
  /** How long the nodes are given to notice lost data and register their users again. */
  readonly #recoveryMilliseconds: number
  #reading: Promise<void> | undefined
  readonly #waiters: Waiter[] = []
  /** Fenced unlinks that could not be committed (Redis was down), tried again until they are. */
  readonly #owed = new Map<string, { generation: number, cause: UnlinkCause }>()
  #tokens = 0
  readonly #sessions: Sessions
  /** With replay on: the replies of this node's links being committed, by token, which their log records wait for. */
  readonly #replays = new Map<string, Promise<Replay | undefined>>()
  /**
   * The links of this node that are committed but whose log record is not applied yet, by token: a reload that
   * covers the record (a gap, a restore) applies them before it sets the mirror to the snapshot, so that their
   * connections are accepted and their events emitted as the record would have.
   */
  readonly #inFlight = new Map<string, LinkChange>()
  /** The links being committed, whose replies a reload waits for: their snapshot may cover them. */
  readonly #replying = new Set<Promise<LinkResult>>()
  /** The tokens of the links being committed, and the generation of each once its record is applied here. */
  readonly #committing = new Map<string, number | undefined>()
  /**
   * With replay on: what this node's users confirmed since the last heartbeat, which saves it, as
   * `<generation>:<number>` (the link that confirmed, so that Redis can tell the user's life it belongs to).
   */
  readonly #confirmed = new Map<string, string>()
  /** This process' life as node `nodeId`: a random id its registration sets, which its heartbeat checks. */
  readonly #life = randomUUID()
  /** Whether another instance started with this node's id: this one takes no more links, and beats no more. */
  #replaced = false
  /** The timers of the reconnection windows of the users this node unlinked. */
  readonly #windows = new Map<string, NodeJS.Timeout>()
  /** What this node refused of what it read from Redis, by kind, since it started. */
  readonly refusedInputs: Record<RefusedInput, number> = { publication: 0, record: 0 }
  /** When a refusal of each kind was last logged, and how many were refused since. */
  readonly #refusalLog = { publication: { at: -Infinity, since: 0 }, record: { at: -Infinity, since: 0 } }

  constructor (options: ResolvedClusterOptions, timeouts: Timeouts, log: FastifyBaseLogger, ioredis: IoredisModule) {
    this.#options = options
    this.nodeId = options.nodeId
    this.#log = log
    this.#ioredis = ioredis
    this.#authTimeoutMilliseconds = timeouts.authTimeoutMilliseconds
    this.#connectTimeoutMilliseconds = timeouts.connectTimeoutMilliseconds
    this.#sessions = timeouts.sessions
    // An application's client with a keyPrefix isolates its keys under it: ours go there too. The duplicates
    // are made without it (see #connect), since scripts build their key names from the prefix themselves.
    this.#prefix = `${keyPrefixOf(options.redis)}{${options.namespace}}`
    this.#seqKey = `${this.#prefix}:seq`
    this.#logKey = `${this.#prefix}:log`
    this.#broadcastChannel = `${this.#prefix}:broadcast`
    this.#nodeChannel = `${this.#prefix}:to:${options.nodeId}`
    this.#heartbeatMilliseconds = Math.max(100, Math.min(1_000, Math.floor(options.nodeTimeoutMilliseconds / 4)))
    this.#stopping = new Promise(resolve => { this.#stop = resolve })
    this.#recoveryMilliseconds = 2 * (this.#heartbeatMilliseconds + reconnectMilliseconds)
    this.#base = typeof options.redis === 'string' ? undefined : options.redis
  }

  /** Whether Redis answered the last heartbeat. */
  get isAvailable (): boolean {
    return this.#available
  }

  async start (sink: BackendSink): Promise<void> {
    this.#sink = sink
    // Named, so that CLIENT LIST shows which node and which part of it each connection is.
    const name = `fastify-link-server:${this.nodeId}`
    this.#commands = this.#connect({ commandTimeout: commandTimeoutMilliseconds, connectionName: `${name}:commands` }) as Client
    this.#subscriber = this.#connect({ connectionName: `${name}:subscriber` })
    this.#reader = this.#connect({ commandTimeout: readBlockMilliseconds + commandTimeoutMilliseconds, connectionName: `${name}:reader` })
    for (const [name, lua] of Object.entries(scripts)) {
      this.#commands.defineCommand(name, { numberOfKeys: 1, lua })
    }
    this.#subscriber.on('message', (channel: string, message: string) => this.#onMessage(channel, message))
    const clients = [this.#commands, this.#subscriber, this.#reader]
    const refused = refusedCredentials(clients)
    try {
      await withTimeout(Promise.race([Promise.all(clients.map(ready)), refused.promise]), this.#connectTimeoutMilliseconds,
        `Redis did not answer within ${this.#connectTimeoutMilliseconds} ms`)
      refused.stop()
      await this.#subscriber.subscribe(this.#broadcastChannel, this.#nodeChannel)
      await this.#register(randomUUID(), true)
    } catch (err) {
      refused.stop()
      this.#disconnect()
      throw new FST_LINK_CLUSTER_UNAVAILABLE('start the link server', (err as Error).message)
    }
    this.#available = true
    this.#beating = this.#beatUntilStopped()
    this.#reading = this.#read()
  }

  /** A connection of this node's own: a duplicate of the application's client, or a new client of the URL. */
  #connect (override: Record<string, unknown>): Redis | Cluster {
    const options = { ...override, enableOfflineQueue: false, lazyConnect: false, retryStrategy: reconnect, maxRetriesPerRequest: 0 }
    if (this.#base === undefined) {
      const client = new this.#ioredis.Redis(this.#options.redis as string, options)
      client.on('error', () => {}) // every failure is answered where a command fails; ioredis reconnects
      return client
    }
    const base = this.#base as unknown as (Redis | Cluster) & { isCluster: boolean }
    const client = base.isCluster
      ? (base as Cluster).duplicate([], { enableOfflineQueue: false, clusterRetryStrategy: reconnect, keyPrefix: '', redisOptions: { ...override, maxRetriesPerRequest: 0 } })
      : (base as Redis).duplicate({ ...options, keyPrefix: '' })
    client.on('error', () => {})
    return client
  }

  /** Registers this node, with the users linked to it when Redis lost them, and loads the user space. */
  async #register (epoch: string, starting: boolean): Promise<void> {
    const args: Array<string | number> = []
    for (const { username, generation, order, data, sent } of this.#sink.linkedHere()) {
      args.push(username, generation, order, data ?? '', sent)
    }
    const [knownEpoch, seq, users, links, data] = await this.#commands.register(this.#seqKey, this.#prefix, epoch, this.nodeId,
      starting ? 1 : 0, this.#sessions.windowMilliseconds, this.#life, ...args)
    this.#epoch = knownEpoch as string
    this.#load(seq as number, users as string[], links as string[], data as string[])
  }

  /**
   * Sets the mirror to the user space as Redis has it, at sequence number `seq`. While the nodes register
   * their users again after Redis lost its data, a user missing from Redis is kept: its node may not have
   * registered it yet; the reload at the end of that time removes those that stayed missing.
   */
  #load (seq: number, users: string[], links: string[], data: string[]): void {
    const linkOf = new Map<string, { node: string, generation: number }>()
    for (let i = 0; i < links.length; i += 2) {
      const [node, generation] = links[i + 1].split(' ')
      linkOf.set(links[i], { node, generation: Number(generation) })
    }
    const dataOf = new Map<string, string>()
    for (let i = 0; i < data.length; i += 2) {
      dataOf.set(data[i], data[i + 1])
    }
    const snapshot: SnapshotUser[] = []
    for (let i = 0; i < users.length; i += 2) {
      snapshot.push({ username: users[i], order: Number(users[i + 1]), link: linkOf.get(users[i]), data: dataOf.get(users[i]) })
    }
    this.#applyInFlight(seq)
    this.#applied = seq
    this.#sink.reset(snapshot, performance.now() < this.#recoveringUntil)
    this.#settle(seq)
  }

  /** Reads the log and applies every change in order; a gap (this node fell behind a trimmed log) reloads the user space. */
  async #read (): Promise<void> {
    while (!this.#stopped) {
      try {
        const reply = await this.#reader.xread('COUNT', 1000, 'BLOCK', readBlockMilliseconds, 'STREAMS', this.#logKey, `${this.#applied}-0`) as Array<[string, Array<[string, string[]]>]> | null
        await this.#applyRecords(reply?.[0][1] ?? [])
      } catch {
        await delay(reconnectMilliseconds) // Redis is away: the heartbeat says so, and this reads again
      }
    }
  }

  async #applyRecords (records: Array<[string, string[]]>): Promise<void> {
    for (const [id, fields] of records) {
      const seq = Number(id.slice(0, id.indexOf('-')))
      if (seq !== this.#applied + 1 || fields[1] === 'restore') {
        if (fields[1] !== 'restore') {
          await this.#healLog()
        }
        await this.#reload() // a gap (this node fell behind the trimmed log), or users registered again after a loss
        return
      }
      const change = changeOf(fields, seq)
      if (change === undefined) {
        this.#refuse('record', `log record ${id} is not a change of fastify-link-server`)
        this.#applied = seq
        this.#settle(seq)
        continue
      }
      if (change.op === 'link' && change.node === this.nodeId) {
        if (this.#committing.has(change.token)) {
          this.#committing.set(change.token, change.generation) // for a read-back of its commit
        }
        const replay = this.#replays.get(change.token)
        if (replay !== undefined) {
          // Its reply, with what the user missed, comes on the other connection, as soon as this record or sooner.
          this.#replays.delete(change.token)
          change.replay = await replay
        }
        this.#inFlight.delete(change.token)
      }
      this.#applied = seq
      if (change.op === 'leave') {
        this.#confirmed.delete(change.username) // it takes its messages with it, as in memory
      }
      if (!this.#sink.apply(change)) {
        this.#refuse('record', `log record ${id} (${change.op} of ${JSON.stringify(change.username)}) does not fit the user space`)
      }
      this.#window(change)
      this.#settle(seq)
    }
  }

  /**
   * A gap in the log: this node fell behind the trimmed log, or another program appended past the sequence number (an
   * XADD with an automatic id), which would make every reader reload and every script fail to append. The foreign
   * entries are removed before the reload (a script that appends heals the log the same way).
   */
  async #healLog (): Promise<void> {
    const removed = await this.#commands.heal(this.#seqKey, this.#prefix).then(reply => Number(reply), () => 0)
    if (removed > 0) {
      this.#refuse('record', `${removed} entries past the sequence number (not the plugin's) were removed from the log`)
    }
  }

  /**
   * Keeps the reconnection window of a user this node unlinked: it leaves when its window ends (the heartbeat's
   * sweep makes it leave as well, a beat later at most, when this node died meanwhile).
   */
  #window (change: Change): void {
    const username = change.username
    clearTimeout(this.#windows.get(username))
    this.#windows.delete(username)
    // A node that stops leaves the windows of its users to the heartbeats of the others.
    if (change.op === 'unlink' && change.origin === this.nodeId && change.cause !== 'takeover' && this.#sessions.windowMilliseconds > 0 && !this.#stopped) {
      this.#expireIn(username, this.#sessions.windowMilliseconds)
    }
  }

  #expireIn (username: string, milliseconds: number): void {
    this.#windows.set(username, setTimeout(() => {
      this.#windows.delete(username)
      this.#commands.expire(this.#seqKey, this.#prefix, this.#epoch, this.nodeId, username).then(reply => {
        if (reply[0] === 'wait' && !this.#stopped) {
          this.#expireIn(username, reply[1] as number) // Redis' clock is behind this node's
        }
      }, () => {}) // Redis is away: the heartbeat's sweep makes it leave later
    }, milliseconds))
  }

  /** Loads the user space anew, unless it is not the one this node is registered in (the heartbeat notices that). */
  async #reload (): Promise<void> {
    let snapshot: Awaited<ReturnType<Client['snapshot']>>
    do {
      const replying = [...this.#replying]
      snapshot = await this.#commands.snapshot(this.#seqKey, this.#prefix)
      // The replies of the links committed before the snapshot came before it, but their handling may not have run.
      await Promise.all(replying)
      // The reader, on a connection of its own, may have applied changes the snapshot predates: it is taken again.
    } while (snapshot[0] === this.#epoch && (snapshot[1] as number) < this.#applied)
    const [epoch, seq, users, links, data] = snapshot
    if (epoch === this.#epoch) {
      this.#load(seq as number, users as string[], links as string[], data as string[])
    }
  }

  /**
   * Applies this node's committed links up to `seq` whose records were not read: a reload covered them, or
   * Redis lost the user space they were made in (they are registered again with the other users linked here).
   */
  #applyInFlight (seq: number): void {
    const covered = [...this.#inFlight.values()].filter(change => change.generation <= seq).sort((a, b) => a.generation - b.generation)
    for (const change of covered) {
      this.#inFlight.delete(change.token)
      this.#replays.delete(change.token) // its record, which would have taken the replay, is never read
      this.#sink.apply(change)
      this.#window(change)
    }
  }

  /** Resolves the commits whose change is applied here. */
  #settle (seq: number): void {
    while (this.#waiters.length > 0 && this.#waiters[0].seq <= seq) {
      (this.#waiters.shift() as Waiter).resolve()
    }
  }

  /** Waits until the change of `seq` is applied here. */
  #appliedAt (seq: number): Promise<void> {
    if (seq <= this.#applied) {
      return Promise.resolve()
    }
    // The waiters are kept in order of seq (the replies of one connection come in the order Redis ran the scripts,
    // and a read-back waits for the seq it read).
    return new Promise(resolve => {
      let index = this.#waiters.length
      while (index > 0 && this.#waiters[index - 1].seq > seq) {
        index--
      }
      this.#waiters.splice(index, 0, { seq, resolve })
    })
  }

  /** The heartbeat, every beat until the node stops; an outage is logged once, and so is the return. */
  async #beatUntilStopped (): Promise<void> {
    while (!this.#stopped && !this.#replaced) {
      await this.#beat().then(() => {
        if (!this.#available) {
          this.#log.info('the cluster is available again')
        }
        this.#available = true
      }, (err: unknown) => {
        if (err instanceof Replaced) {
          this.#log.error({ nodeId: this.nodeId }, err.message)
          this.#replaced = true
          this.#available = false
        } else if (this.#available) {
          this.#log.warn({ err }, 'the cluster is unavailable: Redis does not answer')
        }
        this.#available = false
      })
      await Promise.race([this.#stopping, new Promise(resolve => { this.#pause = setTimeout(resolve, this.#heartbeatMilliseconds) })])
    }
  }

  /** Tells Redis this node is alive, sweeps dead nodes, pays the unlinks it owes, and notices lost data. */
  async #beat (): Promise<void> {
    const confirmed: Array<string | number> = []
    for (const [username, number] of this.#confirmed) {
      confirmed.push(username, number)
    }
    this.#confirmed.clear()
    const replying = [...this.#replying]
    const [status, swept, , nodes, more] = await this.#timed('heartbeat', this.#commands.heartbeat(this.#seqKey, this.#prefix, this.#epoch,
      this.nodeId, this.#options.nodeTimeoutMilliseconds, this.#sessions.windowMilliseconds, this.#life, ...confirmed))
    if (status === 'replaced') {
      throw new Replaced(this.nodeId)
    }
    if (status === 'epoch') {
      this.#log.warn('Redis lost the user space; the users linked to this node are registered again')
      await Promise.all(replying)
      this.#applyInFlight(Infinity) // the links made in the lost user space are this node's, and registered again
      this.#settle(Infinity) // what was waited for was lost with Redis' data
      this.#recoveringUntil = performance.now() + this.#recoveryMilliseconds
      await this.#register(randomUUID(), false)
    } else {
      this.nodes = nodes as number
      if ((swept as number) > 0) {
        this.#log.warn({ swept }, 'a silent node was declared dead; its users are unlinked')
      }
      await this.#expireWindows(more === 1)
    }
    if (this.#recoveringUntil !== 0 && performance.now() >= this.#recoveringUntil) {
      this.#recoveringUntil = 0
      await this.#reload() // the nodes had their time to register their users again: who is still missing is gone
    }
    for (const [username, { generation, cause }] of this.#owed) {
      this.#owed.delete(username)
      await this.unlink(username, generation, cause)
    }
  }

  /**
   * After a heartbeat whose batch of ended reconnection windows was full: the next batches, one short script after
   * the other, until one is not full, so that every user whose window ended leaves within this beat.
   */
  async #expireWindows (more: boolean): Promise<void> {
    while (more && !this.#stopped) {
      const [, , next] = await this.#run('windows', this.nodeId)
      more = next === 1
    }
  }

  /** A script's reply; with metrics on, its round trip is observed, a failed one's too (a timeout is one). */
  #timed<T> (name: ScriptName, reply: Promise<T>): Promise<T> {
    const observe = this.#sink.roundTrip
    if (observe !== undefined) {
      const start = performance.now()
      const observed = (): void => observe(name, (performance.now() - start) / 1000)
      reply.then(observed, observed)
    }
    return reply
  }

  /** Runs a script that changes the user space; its refusals are answered as they are, a lost user space or node as an outage. */
  async #run (name: ScriptName, ...args: Array<string | number>): Promise<ScriptReply> {
    const reply = await this.#timed(name, this.#commands[name](this.#seqKey, this.#prefix, this.#epoch, ...args)).catch((err: unknown) => {
      throw new CommitRefused('unavailable', (err as Error).message)
    })
    const outage = outages.get(reply[0] as string)
    if (outage !== undefined) {
      throw new CommitRefused('unavailable', outage) // the next heartbeat registers this node again, and recovers
    }
    return reply
  }

  async claim (username: string, admission: Admission): Promise<ClaimResult> {
    if (this.#replaced) {
      return { claimed: false, refusal: 'unavailable' } // another instance is this node now
    }
    const token = `${this.nodeId}:${++this.#tokens}`
    const reply = await this.#run('claim', this.nodeId, username, token, admission.acceptNewUsers ? 1 : 0, admission.maxUsers,
      this.#authTimeoutMilliseconds + claimMarginMilliseconds, this.#sessions.takeover ? 1 : 0).then(undefined, () => {
      this.release(username, token) // it may have been taken, its answer lost: freed now, or it expires
      return unavailable()
    })
    if (reply[0] !== 'ok') {
      return { claimed: false, refusal: reply[0] as Refusal }
    }
    return { claimed: true, isNewUser: reply[1] === 1, isLinked: reply[2] === 1, token }
  }

  release (username: string, token: string): void {
    this.#release(username, token, performance.now() + commandTimeoutMilliseconds)
  }

  /** Frees a claim, trying again while a cut connection comes back, until `deadline`; else it expires. */
  #release (username: string, token: string, deadline: number): void {
    this.#whileReconnecting(async () => await this.#commands.release(this.#seqKey, this.#prefix, username, token, this.nodeId), deadline)
  }

  /**
   * Runs `command`, and again after each failure while a cut connection comes back, until it answers or `deadline`
   * passes (or the node stops); answers its answer, or `undefined` when it gave up.
   */
  async #whileReconnecting<T> (command: () => Promise<T>, deadline: number): Promise<T | undefined> {
    for (;;) {
      const result = await command().then(answer => ({ answer }), () => undefined)
      if (result !== undefined) {
        return result.answer
      }
      if (performance.now() >= deadline || this.#stopped) {
        return undefined
      }
      await delay(reconnectMilliseconds)
    }
  }

  async link (username: string, token: string, admission: Admission, data: string | undefined): Promise<LinkResult> {
    const replied = this.#commitLink(username, token, admission, data)
    this.#replying.add(replied)
    const result = await replied
    this.#replying.delete(replied)
    if (result.linked) {
      await this.#appliedAt(result.generation)
    }
    return result
  }

  /** Commits a link; a committed one is in flight until its record, or a reload that covers it, is applied. */
  async #commitLink (username: string, token: string, admission: Admission, data: string | undefined): Promise<LinkResult> {
    const replay = this.#sessions.replay
    let answer: (replay: Replay | undefined) => void = () => {}
    if (replay !== undefined) {
      this.#replays.set(token, new Promise(resolve => { answer = resolve }))
    }
    const confirmed = this.#confirmed.get(username)
    this.#committing.set(token, undefined)
    const reply = await this.#run('link', this.nodeId, username, token, admission.acceptNewUsers ? 1 : 0, admission.maxUsers,
      this.#sessions.takeover ? 1 : 0, data ?? '', replay === undefined ? 0 : 1, replay?.maxAgeMilliseconds ?? 0,
      confirmed ?? '').then(undefined, async () => await this.#readBack(token, answer))
    this.#committing.delete(token)
    if (reply[0] !== 'ok') {
      this.#replays.delete(token)
      answer(undefined)
      return { linked: false, refusal: reply[0] as Refusal }
    }
    const replayed = replay === undefined ? undefined : { head: reply[3] as number, lost: reply[4] as number, messages: (reply[5] as string[]).map(encodeText) }
    answer(replayed)
    const generation = reply[1] as number
    if (generation > this.#applied) {
      this.#inFlight.set(token, { op: 'link', username, origin: this.nodeId, node: this.nodeId, generation, token, isNewUser: reply[2] === '1', data, replay: replayed })
    }
    return { linked: true, generation }
  }

  /**
   * A link whose script call failed with no answer (a timeout, a cut connection): it may have committed. The outcome
   * is read back, not guessed: once this node has read the log up to where it is now, the link committed if its
   * record (found by its token) was applied. A link that committed answers as such (what a replay would have
   * carried was lost with the reply); one that did not, or that cannot be read back (Redis is away), is refused,
   * and if it committed after all its record finds no connection waiting, and the link is unlinked.
   */
  async #readBack (token: string, answer: (replay: Replay | undefined) => void): Promise<ScriptReply> {
    answer(undefined) // the record of the link, if any, waits for this
    const deadline = performance.now() + commandTimeoutMilliseconds
    try {
      await withTimeout(this.#readLogToNow(deadline), commandTimeoutMilliseconds + readBlockMilliseconds, 'the log could not be read back')
    } catch {
      return ['unavailable'] // it may still commit: then its record finds no connection waiting, and it is unlinked
    }
    const generation = this.#committing.get(token)
    return generation === undefined ? ['unavailable'] : ['ok', generation, '0', 0, 0, []]
  }

  /** Reads Redis' sequence number (trying again while a cut connection comes back, until `deadline`), and waits until this node applied it. */
  async #readLogToNow (deadline: number): Promise<void> {
    const seq = await this.#whileReconnecting(async () => await this.#commands.get(this.#seqKey), deadline)
    if (seq === undefined) {
      throw new Error('Redis does not answer')
    }
    await this.#appliedAt(Number(seq))
  }

  join (username: string, maxUsers: number): Commit {
    return this.#change('join', this.nodeId, username, maxUsers)
  }

  async unlink (username: string, generation: number | undefined, cause: UnlinkCause): Commit {
    const confirmed = this.#confirmed.get(username)
    this.#confirmed.delete(username)
    try {
      await this.#change('unlink', this.nodeId, username, generation ?? '', this.#sessions.windowMilliseconds, confirmed ?? '', cause)
    } catch (err) {
      if (generation !== undefined && (err as CommitRefused).refusal === 'unavailable') {
        this.#owed.set(username, { generation, cause }) // a connection closed while Redis was away: its link still ends
      }
      throw err
    }
  }

  leave (username: string, cause: LeaveCause): Commit {
    return this.#change('leave', this.nodeId, username, cause)
  }

  /** Commits a change and waits until it is applied here. */
  async #change (name: ScriptName, ...args: Array<string | number>): Promise<void> {
    const reply = await this.#run(name, ...args)
    if (reply[0] !== 'ok') {
      throw new CommitRefused(reply[0] as CommitRefused['refusal'])
    }
    await this.#appliedAt(reply[1] as number)
  }

  post (username: string | undefined, skip: string | undefined, frame: EncodedFrame): void {
    const replay = this.#sessions.replay as NonNullable<Sessions['replay']>
    this.#timed('post', this.#commands.post(this.#seqKey, this.#prefix, this.#epoch, this.nodeId, username ?? '', skip ?? '',
      replay.maxMessages, replay.maxAgeMilliseconds, frame.payload.toString())).then(undefined, (err: unknown) => {
      this.#log.warn({ err, username }, 'a message could not be kept for replay and was lost: Redis does not answer')
    })
  }

  confirm (username: string, generation: number, number: number): void {
    this.#confirmed.set(username, `${generation}:${number}`) // saved by the next heartbeat, or by the unlink
  }

  deliver (node: string, username: string, text: string): void {
    this.#publish(`${this.#prefix}:to:${node}`, `${wireVersion}\n${JSON.stringify(username)}\n${text}`)
  }

  broadcast (text: string, skip: string | undefined): void {
    this.#publish(this.#broadcastChannel, `${wireVersion}\n${this.nodeId}\n${skip === undefined ? '' : JSON.stringify(skip)}\n${text}`)
  }

  /** One PUBLISH for the whole cluster; a message published while Redis is away is lost, as on any pub/sub. */
  #publish (channel: string, message: string): void {
    this.#commands.publish(channel, message).then(undefined, (err: unknown) => {
      this.#log.debug({ err }, 'a message to other nodes was lost: Redis does not answer')
    })
  }

  /**
   * A publication of another node: `v1`, then for this node's channel the recipients (a username, or with replay
   * `[username, number, ...]`) and the frame; for the broadcast channel the sender, the user to skip and the frame.
   * Anyone can PUBLISH to Redis: what does not parse as such is refused, never delivered.
   */
  #onMessage (channel: string, message: string): void {
    const lines = splitLines(message, channel === this.#nodeChannel ? 3 : 4)
    if (lines?.[0] !== wireVersion) {
      const version = lines?.[0] ?? message.slice(0, message.indexOf('\n'))
      this.#refuse('publication', /^v\d+$/.test(version)
        ? `a node of wire format ${version} published it (this node speaks ${wireVersion}): run one version of fastify-link-server in a cluster`
        : 'it is not a publication of fastify-link-server (a foreign publisher, or a version before the wire format had one)')
      return
    }
    const text = lines[lines.length - 1]
    if (!isApplicationFrame(text)) {
      this.#refuse('publication', 'its frame is not an application message')
      return
    }
    if (channel === this.#nodeChannel) {
      const recipients = parseJson(lines[1])
      if (typeof recipients === 'string') {
        this.#sink.deliver(recipients, encodeText(text), 0)
      } else if (isNumberedRecipients(recipients)) {
        const frame = encodeText(text)
        for (let i = 0; i < recipients.length; i += 2) {
          this.#sink.deliver(recipients[i] as string, frame, recipients[i + 1] as number) // with replay: the users of this node, numbered
        }
      } else {
        this.#refuse('publication', 'its recipients are not a username or [username, number, ...]')
      }
      return
    }
    if (lines[1] === this.nodeId) {
      return // this node sent it to its own users already
    }
    const skip = lines[2] === '' ? undefined : parseJson(lines[2])
    if (skip !== undefined && typeof skip !== 'string') {
      this.#refuse('publication', 'the user it skips is not a username')
      return
    }
    this.#sink.broadcast(text, skip)
  }

  /** Counts what this node refused of what it read from Redis, and says why: at most once a second for each kind. */
  #refuse (input: RefusedInput, reason: string): void {
    this.refusedInputs[input]++
    const log = this.#refusalLog[input]
    log.since++
    const now = performance.now()
    if (now - log.at >= refusalLogMilliseconds) {
      this.#log.warn({ input, refused: log.since }, `Redis held ${input === 'record' ? 'a log record' : 'a publication'} this node refused: ${reason}`)
      log.at = now
      log.since = 0
    }
  }

  async closeNode (): Promise<void> {
    const unlinks = this.#sink.linkedHere().map(async ({ username, generation }) => await this.unlink(username, generation, 'close'))
    await withTimeout(Promise.all(unlinks), unlinkOwnTimeoutMilliseconds, 'the unlinks took too long').then(undefined, (err: unknown) => {
      this.#log.warn({ err }, 'the users of this node could not all be unlinked; the other nodes will unlink them when this node times out')
    })
  }

  async stop (): Promise<void> {
    this.#stopped = true
    clearTimeout(this.#pause)
    for (const timer of this.#windows.values()) {
      clearTimeout(timer)
    }
    this.#stop()
    await this.#beating
    this.#owed.clear()
    await this.#commands.deregister(this.#seqKey, this.#prefix, this.nodeId).then(undefined, () => {})
    this.#settle(Infinity)
    this.#disconnect()
    await this.#reading
  }

  #disconnect (): void {
    for (const client of [this.#commands, this.#subscriber, this.#reader]) {
      client.disconnect()
    }
  }
}

/** The change a log record holds, or `undefined` for a record that is not one (a foreign writer's). */
function changeOf (fields: string[], seq: number): Change | undefined {
  const value = new Map<string, string>() // XADD stores field and value pairs of strings
  for (let i = 0; i < fields.length; i += 2) {
    value.set(fields[i], fields[i + 1])
  }
  const username = value.get('u')
  const origin = value.get('o')
  if (!isText(username) || typeof origin !== 'string') {
    return undefined
  }
  const generation = Number(value.get('g'))
  const cause = value.get('c')
  switch (value.get('op')) {
    case 'link': {
      const node = value.get('n')
      const token = value.get('t')
      const data = value.get('d')
      if (!isText(node) || !isText(token) || !isGeneration(generation)) {
        return undefined
      }
      return { op: 'link', username, origin, node, generation, token, isNewUser: value.get('new') === '1', data }
    }
    case 'unlink':
      return isGeneration(generation) && unlinkCauses.includes(cause as UnlinkCause)
        ? { op: 'unlink', username, origin, generation, cause: cause as UnlinkCause }
        : undefined
    case 'join':
      return { op: 'join', username, origin, order: seq }
    case 'leave':
      return leaveCauses.includes(cause as LeaveCause) ? { op: 'leave', username, origin, cause: cause as LeaveCause } : undefined
    default:
      return undefined
  }
}

function isText (value: unknown): value is string {
  return typeof value === 'string' && value !== ''
}

function isGeneration (value: number): boolean {
  return Number.isSafeInteger(value) && value > 0
}

/** The first `count - 1` lines of `message`, and the rest as the last; `undefined` when it has fewer lines. */
function splitLines (message: string, count: number): string[] | undefined {
  const lines: string[] = []
  let start = 0
  for (let i = 1; i < count; i++) {
    const end = message.indexOf('\n', start)
    if (end === -1) {
      return undefined
    }
    lines.push(message.slice(start, end))
    start = end + 1
  }
  lines.push(message.slice(start))
  return lines
}

function parseJson (text: string): unknown {
  try {
    return JSON.parse(text)
  } catch {
    return undefined
  }
}

/** `[username, number, ...]`: the users of this node a message with replay is for, each with its number. */
function isNumberedRecipients (value: unknown): value is Array<string | number> {
  if (!Array.isArray(value) || value.length === 0 || value.length % 2 !== 0) {
    return false
  }
  for (let i = 0; i < value.length; i += 2) {
    if (!isText(value[i]) || !Number.isSafeInteger(value[i + 1]) || (value[i + 1] as number) < 0) {
      return false
    }
  }
  return true
}

/** Whether `text` is the JSON of an application message: an object whose type is a string outside `krmx/`. */
function isApplicationFrame (text: string): boolean {
  const frame = parseJson(text) as { type?: unknown } | null | undefined
  return typeof frame === 'object' && frame !== null && !Array.isArray(frame) && typeof frame.type === 'string' && !frame.type.startsWith('krmx/')
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
  promise.catch(() => {}) // answered by the race in start, or too late to matter
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

/** The reply of a script that could not run: Redis is away. */
function unavailable (): ScriptReply {
  return ['unavailable']
}

/** What a heartbeat answers when another instance registered with this node's id since (a restart, or two instances given one id). */
class Replaced extends Error {
  constructor (nodeId: string) {
    super(`another instance started as node ${nodeId}, which ended this one's links; this instance takes no more links: give each instance a nodeId of its own`)
  }
}

/** The replies of a script that mean this node cannot change the user space until its next heartbeat. */
const outages = new Map([
  ['epoch', 'Redis lost the user space'],
  ['dead', 'this node was declared dead']
])

function delay (milliseconds: number): Promise<void> {
  return new Promise(resolve => setTimeout(resolve, milliseconds))
}

async function withTimeout<T> (promise: Promise<T>, milliseconds: number, message: string): Promise<T> {
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

/**
 * Loads ioredis (an optional peer dependency, so that only clustered applications install it) and
 * makes the backend; an application without it gets a coded error that says what to install.
 */
export async function createRedisBackend (
  options: ResolvedClusterOptions,
  timeouts: Timeouts,
  log: FastifyBaseLogger,
  load: () => Promise<unknown> = async () => import('ioredis')
): Promise<RedisBackend> {
  let ioredis: IoredisModule
  try {
    ioredis = await load() as IoredisModule
  } catch (err) {
    throw new FST_LINK_CLUSTER_UNAVAILABLE('use cluster mode', `the ioredis package could not be loaded (npm install ioredis): ${(err as Error).message}`)
  }
  return new RedisBackend(options, timeouts, log, ioredis)
}
