import { performance } from 'node:perf_hooks'
import { encodeText } from '../../frames.js'
import type { Admission, ClaimResult, LinkChange, LinkResult, Refusal, Replay } from '../backend.js'
import { commandTimeoutMilliseconds, readBlockMilliseconds, type ScriptReply, withTimeout } from './connections.js'
import type { RedisParts } from './parts.js'

/** A claim outlives the longest authentication by this much, and then expires (its node may have died). */
const claimMarginMilliseconds = 5_000

/**
 * The links of this node, from their claim until their log record is applied here: claims and their release, the
 * commit of a link, the read-back of one whose reply was lost, and what a record or a reload that covers it needs.
 * Every map is keyed by the link's token.
 */
export class RedisLinks {
  readonly #parts: RedisParts
  #tokens = 0
  /** With replay on: the replies of this node's links being committed, which their log records wait for. */
  readonly #replays = new Map<string, Promise<Replay | undefined>>()
  /**
   * The links of this node that are committed but whose log record is not applied yet: a reload that covers the
   * record (a gap, a restore) applies them before it sets the mirror to the snapshot, so that their connections
   * are accepted and their events emitted as the record would have.
   */
  readonly #inFlight = new Map<string, LinkChange>()
  /** The links being committed, whose replies a reload waits for: their snapshot may cover them. */
  readonly #replying = new Set<Promise<LinkResult>>()
  /** The links being committed, and the generation of each once its record is applied here. */
  readonly #committing = new Map<string, number | undefined>()

  constructor (parts: RedisParts) {
    this.#parts = parts
  }

  async claim (username: string, admission: Admission): Promise<ClaimResult> {
    const { nodeId, redis, sessions, liveness, authTimeoutMilliseconds } = this.#parts
    if (liveness.replaced) {
      return { claimed: false, refusal: 'unavailable' } // another instance is this node now
    }
    const token = `${nodeId}:${++this.#tokens}`
    const reply = await redis.run('claim', nodeId, username, token, admission.acceptNewUsers ? 1 : 0, admission.maxUsers,
      authTimeoutMilliseconds + claimMarginMilliseconds, sessions.takeover ? 1 : 0).then(undefined, () => {
      this.release(username, token) // it may have been taken, its answer lost: freed now, or it expires
      return ['unavailable']
    })
    if (reply[0] !== 'ok') {
      return { claimed: false, refusal: reply[0] as Refusal }
    }
    return { claimed: true, isNewUser: reply[1] === 1, isLinked: reply[2] === 1, token }
  }

  /** Frees a claim, trying again while a cut connection comes back, for a command's timeout; else it expires. */
  release (username: string, token: string): void {
    const { nodeId, redis } = this.#parts
    redis.whileReconnecting(async () => await redis.commands.release(redis.seqKey, redis.prefix, username, token, nodeId),
      performance.now() + commandTimeoutMilliseconds)
  }

  async link (username: string, token: string, admission: Admission, data: string | undefined): Promise<LinkResult> {
    const replied = this.#commit(username, token, admission, data)
    this.#replying.add(replied)
    const result = await replied
    this.#replying.delete(replied)
    if (result.linked) {
      await this.#parts.reader.appliedAt(result.generation)
    }
    return result
  }

  /** Commits a link; a committed one is in flight until its record, or a reload that covers it, is applied. */
  async #commit (username: string, token: string, admission: Admission, data: string | undefined): Promise<LinkResult> {
    const { nodeId, redis, sessions, store, reader } = this.#parts
    const replay = sessions.replay
    let answer: (replay: Replay | undefined) => void = () => {}
    if (replay !== undefined) {
      this.#replays.set(token, new Promise(resolve => { answer = resolve }))
    }
    this.#committing.set(token, undefined)
    const reply = await redis.run('link', nodeId, username, token, admission.acceptNewUsers ? 1 : 0, admission.maxUsers,
      sessions.takeover ? 1 : 0, data ?? '', replay === undefined ? 0 : 1, replay?.maxAgeMilliseconds ?? 0,
      store.confirmedOf(username) ?? '').then(undefined, async () => await this.#readBack(token, answer))
    this.#committing.delete(token)
    if (reply[0] !== 'ok') {
      this.#replays.delete(token)
      answer(undefined)
      return { linked: false, refusal: reply[0] as Refusal }
    }
    const replayed = replay === undefined ? undefined : { head: reply[3] as number, lost: reply[4] as number, messages: (reply[5] as string[]).map(encodeText) }
    answer(replayed)
    const generation = reply[1] as number
    if (generation > reader.applied) {
      this.#inFlight.set(token, { op: 'link', username, origin: nodeId, node: nodeId, generation, token, isNewUser: reply[2] === '1', data, replay: replayed })
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
    const redis = this.#parts.redis
    const seq = await redis.whileReconnecting(async () => await redis.commands.get(redis.seqKey), deadline)
    if (seq === undefined) {
      throw new Error('Redis does not answer')
    }
    await this.#parts.reader.appliedAt(Number(seq))
  }

  /** The log record of a link of this node is read: it takes its replay, and is in flight no more. */
  async recorded (change: LinkChange): Promise<void> {
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

  /**
   * Applies this node's committed links up to `seq` whose records were not read: a reload covered them, or
   * Redis lost the user space they were made in (they are registered again with the other users linked here).
   */
  applyCovered (seq: number): void {
    const covered = [...this.#inFlight.values()].filter(change => change.generation <= seq).sort((a, b) => a.generation - b.generation)
    for (const change of covered) {
      this.#inFlight.delete(change.token)
      this.#replays.delete(change.token) // its record, which would have taken the replay, is never read
      this.#parts.sink.apply(change)
      this.#parts.windows.follow(change)
    }
  }

  /** The replies of the links being committed now. */
  replying (): Array<Promise<LinkResult>> {
    return [...this.#replying]
  }
}
