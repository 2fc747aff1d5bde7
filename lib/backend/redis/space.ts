import { CommitRefused } from '../backend.js'
import type { RedisConnections, ScriptReply } from './connections.js'
import type { ScriptName } from './scripts.js'

/** The replies of a script that mean this node cannot change the user space until its next heartbeat. */
const outages = new Map([
  ['epoch', 'Redis lost the user space'],
  ['dead', 'this node was declared dead']
])

/**
 * One user space in Redis, a room's: the names of its keys and channels, all under one hash tag (so that its scripts
 * run on one slot of a Redis Cluster), and the epoch of it this node is registered in. With rooms off, the endpoint's
 * one user space is under `{namespace}`; with rooms on, each room's under `{namespace:room}`.
 */
export class RedisSpace {
  /** The room's name (`''` with rooms off). */
  readonly name: string
  /** `{namespace}` or `{namespace:room}`, after the `keyPrefix` of the application's client if it has one: what its keys and channels start with. */
  readonly prefix: string
  readonly seqKey: string
  /** The stream of the log, and the channel its records are published on. */
  readonly logKey: string
  readonly broadcastChannel: string
  /** The channel of this room's messages to this node's users. */
  readonly nodeChannel: string
  /** The epoch of the user space this node is registered in. */
  epoch = ''
  readonly #redis: RedisConnections

  constructor (redis: RedisConnections, name: string, nodeId: string) {
    this.#redis = redis
    this.name = name
    this.prefix = redis.prefixOf(name)
    this.seqKey = `${this.prefix}:seq`
    this.logKey = `${this.prefix}:log`
    this.broadcastChannel = `${this.prefix}:broadcast`
    this.nodeChannel = this.channelOf(nodeId)
  }

  /** The channel of this room's messages to the users of `node`. */
  channelOf (node: string): string {
    return `${this.prefix}:to:${node}`
  }

  /** Runs a script that changes the user space; its refusals are answered as they are, a lost user space or node as an outage. */
  async run (name: ScriptName, ...args: Array<string | number>): Promise<ScriptReply> {
    const redis = this.#redis
    const reply = await redis.timed(name, redis.commands[name](this.seqKey, this.prefix, this.epoch, ...args)).catch((err: unknown) => {
      throw new CommitRefused('unavailable', (err as Error).message)
    })
    const outage = outages.get(reply[0] as string)
    if (outage !== undefined) {
      throw new CommitRefused('unavailable', outage) // the next heartbeat registers this node again, and recovers
    }
    return reply
  }
}
