import { performance } from 'node:perf_hooks'
import type { SnapshotUser } from '../backend.js'
import type { ScriptReply } from './connections.js'
import type { RedisParts } from './parts.js'
import { changeOf } from './wire.js'

/** A change waiting to be applied on this node, and who waits for it. */
interface Waiter {
  seq: number
  resolve: () => void
}

/** How many records one read of the log takes, at most. */
const readCount = 1_000

/**
 * Applies the records of the log of the user space in order: each is published on the log's channel as it is
 * appended, and what this node missed (before it subscribed, while its subscription was cut) is read from the log
 * itself. A gap (this node fell behind the trimmed log) or a restore reloads the user space. It knows which change
 * this node applied last, and resolves who waits for a change to be applied here.
 */
export class LogReader {
  readonly #parts: RedisParts
  /** The sequence number of the last change applied here. */
  #applied = 0
  readonly #waiters: Waiter[] = []
  /** What applies records, one step after the other: a published record, or a read of what was missed. */
  #applying: Promise<void> = Promise.resolve()
  /** A read of the log failed: the next heartbeat Redis answers reads it again. */
  #unread = false

  constructor (parts: RedisParts) {
    this.#parts = parts
  }

  get applied (): number {
    return this.#applied
  }

  /** Subscribes to the log's channel, and reads what was appended since the user space was loaded; again after each reconnection. */
  async start (): Promise<void> {
    const { redis, space } = this.#parts
    await redis.logs.add([[space.logKey, message => this.#published(message)]], () => this.#catchUp())
    await this.#applying // the node starts with the user space as it is now
  }

  /** This node no longer serves the room: it hears no more of its log. */
  stop (): void {
    const { redis, space } = this.#parts
    redis.logs.remove([space.logKey])
  }

  /** The read loop ended: the node stopped (what it was applying is done). */
  async finished (): Promise<void> {
    await this.#applying
  }

  /** Runs `step` after the steps before it; one that fails (Redis is away) leaves the log to be read again. */
  #then (step: () => Promise<void>): void {
    this.#applying = this.#applying.then(step).then(undefined, () => { this.#unread = true })
  }

  /** After a heartbeat that Redis answered: the log is read again if a read failed since. */
  retry (): void {
    if (this.#unread) {
      this.#unread = false
      this.#catchUp()
    }
  }

  /** A record published on the log's channel: `<seq>` and its fields as JSON. Anyone may publish there: it is input. */
  #published (message: string): void {
    const newline = message.indexOf('\n')
    const seq = Number(message.slice(0, newline))
    const fields = parseFields(message.slice(newline + 1))
    if (newline === -1 || !Number.isSafeInteger(seq) || seq < 1 || fields === undefined) {
      this.#parts.refusals.refuse('publication', 'a message on the channel of the log is not a record of fastify-link-server')
      return
    }
    this.#then(async () => {
      if (seq === this.#applied + 1) {
        await this.#applyRecords([[`${seq}-0`, fields]])
      } else if (seq > this.#applied) {
        await this.#readMissed() // a record this node did not hear of came before it
      }
    })
  }

  /** Reads and applies what the log holds past what this node applied. */
  #catchUp (): void {
    this.#then(() => this.#readMissed())
  }

  async #readMissed (): Promise<void> {
    const { redis, space } = this.#parts
    for (;;) {
      const records = await redis.commands.xrange(space.logKey, `${this.#applied + 1}-0`, '+', 'COUNT', readCount)
      await this.#applyRecords(records)
      if (records.length < readCount) {
        return
      }
    }
  }

  async #applyRecords (records: Array<[string, string[]]>): Promise<void> {
    const { links, refusals, store, windows } = this.#parts
    for (const [id, fields] of records) {
      const seq = Number(id.slice(0, id.indexOf('-')))
      if (seq !== this.#applied + 1 || fields[1] === 'restore') {
        if (fields[1] !== 'restore') {
          await this.#healLog()
        }
        await this.reload() // a gap (this node fell behind the trimmed log), or users registered again after a loss
        return
      }
      const change = changeOf(fields, seq)
      if (change === undefined) {
        refusals.refuse('record', `log record ${id} is not a change of fastify-link-server`)
        this.#applied = seq
        this.settle(seq)
        continue
      }
      if (change.op === 'link' && change.node === this.#parts.nodeId) {
        await links.recorded(change)
      }
      this.#applied = seq
      if (change.op === 'leave') {
        store.forgetConfirmed(change.username) // it takes its messages with it, as in memory
      }
      if (!this.#parts.sink.apply(change)) {
        refusals.refuse('record', `log record ${id} (${change.op} of ${JSON.stringify(change.username)}) does not fit the user space`)
      }
      if (change.op === 'leave' && change.origin === this.#parts.nodeId) {
        this.#ended(fields)
      }
      windows.follow(change)
      this.settle(seq)
    }
  }

  /** A leave of this node that ended its room (the record names the incarnation that ended): the room leaves the registry. */
  #ended (fields: string[]): void {
    const { registry, space, log } = this.#parts
    for (let i = 0; i < fields.length; i += 2) {
      if (fields[i] === 'e') {
        registry.drop(space.name, fields[i + 1]).then(undefined, (err: unknown) => {
          log.warn({ err, room: space.name }, 'an ended room could not be removed from the registry; listing the rooms removes it')
        })
      }
    }
  }

  /**
   * A gap in the log: this node fell behind the trimmed log, or another program appended past the sequence number (an
   * XADD with an automatic id), which would make every reader reload and every script fail to append. The foreign
   * entries are removed before the reload (a script that appends heals the log the same way).
   */
  async #healLog (): Promise<void> {
    const { redis, space } = this.#parts
    const removed = await redis.commands.heal(space.seqKey, space.prefix).then(reply => Number(reply), () => 0)
    if (removed > 0) {
      this.#parts.refusals.refuse('record', `${removed} entries past the sequence number (not the plugin's) were removed from the log`)
    }
  }

  /** Loads the user space anew, unless it is not the one this node is registered in (the heartbeat notices that). */
  async reload (): Promise<void> {
    const { redis, space, links } = this.#parts
    let snapshot: ScriptReply
    do {
      const replying = links.replying()
      snapshot = await redis.commands.snapshot(space.seqKey, space.prefix)
      // The replies of the links committed before the snapshot came before it, but their handling may not have run.
      await Promise.all(replying)
      // The reader, on a connection of its own, may have applied changes the snapshot predates: it is taken again.
    } while (snapshot[0] === space.epoch && (snapshot[1] as number) < this.#applied)
    const [epoch, seq, users, linked, data] = snapshot
    if (epoch === space.epoch) {
      this.load(seq as number, users as string[], linked as string[], data as string[])
    }
  }

  /**
   * Sets the mirror to the user space as Redis has it, at sequence number `seq`. While the nodes register
   * their users again after Redis lost its data, a user missing from Redis is kept: its node may not have
   * registered it yet; the reload at the end of that time removes those that stayed missing.
   */
  load (seq: number, users: string[], links: string[], data: string[]): void {
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
    this.#parts.links.applyCovered(seq)
    this.#applied = seq
    this.#parts.sink.reset(snapshot, performance.now() < this.#parts.liveness.recoveringUntil)
    this.settle(seq)
  }

  /** Resolves the commits whose change is applied here. */
  settle (seq: number): void {
    while (this.#waiters.length > 0 && this.#waiters[0].seq <= seq) {
      (this.#waiters.shift() as Waiter).resolve()
    }
  }

  /** Waits until the change of `seq` is applied here. */
  appliedAt (seq: number): Promise<void> {
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
}

/** The fields of a published record, a JSON array of strings, or `undefined` for anything else. */
function parseFields (text: string): string[] | undefined {
  try {
    const fields: unknown = JSON.parse(text)
    return Array.isArray(fields) && fields.every(field => typeof field === 'string') ? fields as string[] : undefined
  } catch {
    return undefined
  }
}
