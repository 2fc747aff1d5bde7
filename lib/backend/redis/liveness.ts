import { randomUUID } from 'node:crypto'
import { performance } from 'node:perf_hooks'
import type { UnlinkCause } from '../backend.js'
import { reconnectMilliseconds } from './connections.js'
import type { RedisParts } from './parts.js'

/** What a heartbeat answers when another instance registered with this node's id since (a restart, or two instances given one id). */
class Replaced extends Error {
  constructor (nodeId: string) {
    super(`another instance started as node ${nodeId}, which ended this one's links; this instance takes no more links: give each instance a nodeId of its own`)
  }
}

/**
 * This node's registration and heartbeat: it tells Redis the node is alive, sweeps dead nodes, expires ended
 * reconnection windows, pays the unlinks it owes, notices lost data (and registers this node's users again), and
 * says whether the cluster is available.
 */
export class Liveness {
  /** How many nodes are alive, as the last heartbeat found. */
  nodes = 1
  /** Whether Redis answers and the user space is recovered: links and changes are refused while it is not. */
  available = false
  /** Whether another instance started with this node's id: this one takes no more links, and beats no more. */
  replaced = false
  /** Until when (`performance.now()`) the nodes are registering their users again after Redis lost its data. */
  recoveringUntil = 0
  readonly #parts: RedisParts
  readonly #heartbeatMilliseconds: number
  /** How long the nodes are given to notice lost data and register their users again. */
  readonly #recoveryMilliseconds: number
  /** This process' life as node `nodeId`: a random id its registration sets, which its heartbeat checks. */
  readonly #life = randomUUID()
  /** Fenced unlinks that could not be committed (Redis was down), tried again until they are. */
  readonly #owed = new Map<string, { generation: number, cause: UnlinkCause }>()
  #beating: Promise<void> | undefined
  #pause: NodeJS.Timeout | undefined
  /** This node stopped serving the room (or stopped). */
  #stopped = false
  /** Resolves when the node stops, ending the wait between two heartbeats. */
  readonly #stopping: Promise<void>
  #stop!: () => void

  constructor (parts: RedisParts) {
    this.#parts = parts
    this.#heartbeatMilliseconds = Math.max(100, Math.min(1_000, Math.floor(parts.options.nodeTimeoutMilliseconds / 4)))
    this.#recoveryMilliseconds = 2 * (this.#heartbeatMilliseconds + reconnectMilliseconds)
    this.#stopping = new Promise(resolve => { this.#stop = resolve })
  }

  /** Registers this node, with the users linked to it when Redis lost them, and loads the user space. */
  async register (epoch: string, starting: boolean): Promise<void> {
    const { redis, space, sink, nodeId, sessions, reader } = this.#parts
    const args: Array<string | number> = []
    for (const { username, generation, order, data, sent } of sink.linkedHere()) {
      args.push(username, generation, order, data ?? '', sent)
    }
    const [knownEpoch, seq, users, links, data] = await redis.commands.register(space.seqKey, space.prefix, epoch, nodeId,
      starting ? 1 : 0, sessions.windowMilliseconds, this.#life, ...args)
    space.epoch = knownEpoch as string
    reader.load(seq as number, users as string[], links as string[], data as string[])
  }

  start (): void {
    this.available = true
    this.#beating = this.#beatUntilStopped()
  }

  /** A fenced unlink that could not be committed (a connection closed while Redis was away): its link still ends. */
  owe (username: string, generation: number, cause: UnlinkCause): void {
    this.#owed.set(username, { generation, cause })
  }

  /** Ends the heartbeat (after the beat under way), and forgets the unlinks owed: the other nodes sweep them. */
  async stop (): Promise<void> {
    this.#stopped = true
    clearTimeout(this.#pause)
    this.#stop()
    await this.#beating
    this.#owed.clear()
  }

  /** The heartbeat, every beat until the node stops; an outage is logged once, and so is the return. */
  async #beatUntilStopped (): Promise<void> {
    const { redis, log, nodeId } = this.#parts
    while (!redis.stopped && !this.#stopped && !this.replaced) {
      await this.#beat().then(() => {
        if (!this.available) {
          log.info('the cluster is available again')
        }
        this.available = true
        this.#parts.reader.retry()
      }, (err: unknown) => {
        if (err instanceof Replaced) {
          log.error({ nodeId }, err.message)
          this.replaced = true
          this.available = false
        } else if (this.available) {
          log.warn({ err }, 'the cluster is unavailable: Redis does not answer')
        }
        this.available = false
      })
      await Promise.race([this.#stopping, new Promise(resolve => { this.#pause = setTimeout(resolve, this.#heartbeatMilliseconds) })])
    }
  }

  /** Tells Redis this node is alive (saving what its users confirmed), and acts on its answer. */
  async #beat (): Promise<void> {
    const { redis, space, log, nodeId, options, sessions, links, store } = this.#parts
    const confirmed = store.takeConfirmed()
    const replying = links.replying()
    const [status, swept, , nodes, more] = await redis.timed('heartbeat', redis.commands.heartbeat(space.seqKey, space.prefix, space.epoch,
      nodeId, options.nodeTimeoutMilliseconds, sessions.windowMilliseconds, this.#life, ...confirmed))
    if (status === 'replaced') {
      throw new Replaced(nodeId)
    }
    if (status === 'epoch') {
      await this.#recover(replying)
    } else {
      this.nodes = nodes as number
      if ((swept as number) > 0) {
        log.warn({ swept }, 'a silent node was declared dead; its users are unlinked')
      }
      await this.#expireWindows(more === 1)
    }
    await this.#endRecovery()
    await this.#payOwed()
  }

  /** Redis lost the user space: this node registers its users again, after the links being committed settled. */
  async #recover (replying: Array<Promise<unknown>>): Promise<void> {
    const { log, links, reader } = this.#parts
    log.warn('Redis lost the user space; the users linked to this node are registered again')
    await Promise.all(replying)
    links.applyCovered(Infinity) // the links made in the lost user space are this node's, and registered again
    reader.settle(Infinity) // what was waited for was lost with Redis' data
    this.recoveringUntil = performance.now() + this.#recoveryMilliseconds
    await this.register(randomUUID(), false)
  }

  /** The nodes had their time to register their users again after a loss: who is still missing is gone. */
  async #endRecovery (): Promise<void> {
    if (this.recoveringUntil !== 0 && performance.now() >= this.recoveringUntil) {
      this.recoveringUntil = 0
      await this.#parts.reader.reload()
    }
  }

  /** The fenced unlinks that could not be committed while Redis was away. */
  async #payOwed (): Promise<void> {
    for (const [username, { generation, cause }] of this.#owed) {
      this.#owed.delete(username)
      await this.#parts.store.unlink(username, generation, cause)
    }
  }

  /**
   * After a heartbeat whose batch of ended reconnection windows was full: the next batches, one short script after
   * the other, until one is not full, so that every user whose window ended leaves within this beat.
   */
  async #expireWindows (more: boolean): Promise<void> {
    const { redis, space, nodeId } = this.#parts
    while (more && !redis.stopped) {
      const [, , next] = await space.run('windows', nodeId)
      more = next === 1
    }
  }
}
