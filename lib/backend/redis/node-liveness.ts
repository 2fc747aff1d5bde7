import { randomUUID } from 'node:crypto'
import type { Admission } from '../backend.js'
import type { RedisNode } from './parts.js'

/** How many due rooms one heartbeat takes to serve, at most. */
const dueBatch = 100

/** What the node's heartbeat asks of the backend: serve the due rooms; which rooms it serves, and whether each has users. */
export interface ServedRooms {
  serve: (names: string[]) => void
  served: () => Array<{ name: string, occupied: boolean }>
}

/** A room registered again after a loss: whatever the limits, it exists. */
const anyRoom: Admission = { acceptNewUsers: true, maxUsers: Infinity, acceptNewRooms: true, maxRooms: Infinity }

/**
 * With rooms on, this node's registration and heartbeat under the namespace's tag (each room it serves has its own
 * heartbeat besides, see `Liveness`): it says whether Redis answers and how many nodes are alive, declares silent nodes
 * dead (their rooms become due), and takes due rooms to serve, so that a room no instance serves still sweeps a dead
 * node's links and ends its reconnection windows.
 */
export class NodeLiveness {
  nodes = 1
  available = false
  /** Whether another instance started with this node's id: this one takes no more links, and beats no more. */
  replaced = false
  readonly #node: RedisNode
  readonly #heartbeatMilliseconds: number
  readonly #life = randomUUID()
  #timer: NodeJS.Timeout | undefined
  #beat: Promise<void> = Promise.resolve()
  /** Serves the due rooms, and names the rooms this node serves. */
  readonly #rooms: ServedRooms

  constructor (node: RedisNode, rooms: ServedRooms) {
    this.#node = node
    this.#rooms = rooms
    this.#heartbeatMilliseconds = Math.max(100, Math.min(1_000, Math.floor(node.options.nodeTimeoutMilliseconds / 4)))
  }

  get #nodesKey (): string {
    return `${this.#node.redis.prefix}:nodes`
  }

  async register (): Promise<void> {
    const { redis, nodeId } = this.#node
    await redis.commands.nodeRegister(this.#nodesKey, redis.prefix, nodeId, this.#life)
    this.available = true
  }

  start (): void {
    this.#timer = setInterval(() => {
      this.#beat = this.#beat.then(async () => await this.#beatOnce())
    }, this.#heartbeatMilliseconds)
  }

  async stop (): Promise<void> {
    clearInterval(this.#timer)
    await this.#beat
    const { redis, nodeId } = this.#node
    await redis.commands.nodeDeregister(this.#nodesKey, redis.prefix, nodeId).then(undefined, () => {})
  }

  async #beatOnce (): Promise<void> {
    const { redis, nodeId, options, log, registry } = this.#node
    try {
      const [status, unknown, nodes, dead, due] = await redis.commands.nodeBeat(this.#nodesKey, redis.prefix, nodeId,
        options.nodeTimeoutMilliseconds, this.#life, dueBatch)
      if (status === 'replaced') {
        log.error({ nodeId }, `another instance started as node ${nodeId}; this instance takes no more links: give each instance a nodeId of its own`)
        this.replaced = true
        this.available = false
        clearInterval(this.#timer) // it beats no more
        return
      }
      if (!this.available) {
        log.info('the cluster is available again')
      }
      this.available = true
      this.nodes = nodes as number
      if ((dead as number) > 0) {
        log.warn({ nodes: dead }, 'a silent node was declared dead; its rooms are swept')
      }
      const served = this.#rooms.served()
      if (unknown === 1 && served.length > 0) {
        // Declared dead, or Redis lost its data: the rooms this node serves are listed again, and those with users
        // registered again (after a loss, their nodes register their users again too).
        await redis.commands.serve(this.#nodesKey, redis.prefix, nodeId, ...served.map(({ name }) => name))
        await Promise.all(served.filter(({ occupied }) => occupied).map(async ({ name }) => await registry.admit(name, anyRoom, true, false)))
      }
      if ((due as string[]).length > 0) {
        this.#rooms.serve(due as string[])
      }
    } catch (err) {
      if (this.available) {
        log.warn({ err }, 'the cluster is unavailable: Redis does not answer')
      }
      this.available = false
    }
  }
}
