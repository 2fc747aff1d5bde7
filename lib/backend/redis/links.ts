import { performance } from 'node:perf_hooks'
import { encodeText } from '../../frames.js'
import type { Admission, ClaimResult, LinkChange, LinkResult, Refusal, Replay } from '../backend.js'
import { catchUpMilliseconds, commandTimeoutMilliseconds, type ScriptReply, withTimeout } from './connections.js'
import type { RedisParts } from './parts.js'
import { runAdmitted } from './registry.js'

/** A claim outlives the longest authentication by this much, and then expires (its node may have died). */
export const claimMarginMilliseconds = 5_000

/** A link of this node from its commit until its log record is applied here, or a reload covers it. */
interface CommittingLink {
  /** While the reply of its script is awaited: that reply (a reload waits for it: its snapshot may cover the link). */
  reply: Promise<LinkResult> | undefined
  /** With replay on, until its record takes it: what the reply says the user missed. */
  replay: Promise<Replay | undefined> | undefined
  /** The generation its record was applied with, if it was before the reply came (for a read-back of a lost reply). */
  recorded: number | undefined
  /**
   * Committed, its record not applied yet: a reload that covers the record (a gap, a restore) applies it before it
   * sets the mirror to the snapshot, so that its connection is accepted and its events emitted as the record would have.
   */
  change: LinkChange | undefined
}

/**
 * The links of this node, from their claim until their log record is applied here: claims and their release, the
 * commit of a link, the read-back of one whose reply was lost, and what a record or a reload that covers it needs,
 * in one map by the link's token.
 */
export class RedisLinks {
  readonly #parts: RedisParts
  #tokens = 0
  readonly #committing = new Map<string, CommittingLink>()
  /** The claims admitted into the registry for a room they would make, by token: the incarnation they were given. */
  readonly #admitted = new Map<string, string>()

  constructor (parts: RedisParts) {
    this.#parts = parts
  }

  async claim (username: string, admission: Admission): Promise<ClaimResult> {
    const { nodeId, space, sessions, liveness, authTimeoutMilliseconds, options, registry, sink, beat } = this.#parts
    if (!await this.#parts.served().then(() => true, () => false) || liveness.replaced || beat.replaced) {
      return { claimed: false, refusal: 'unavailable' } // Redis is away, or another instance is this node now
    }
    const token = `${nodeId}:${++this.#tokens}`
    if (options.rooms && sink.users.size === 0) {
      // A link that may make the room holds its place in the registry (and is refused one that may not be made).
      const admitted = await registry.admit(space.name, admission, false, false).catch(() => 'unavailable')
      if (!/^\d+-/.test(admitted)) {
        return { claimed: false, refusal: admitted as Refusal }
      }
      this.#admitted.set(token, admitted)
    }
    const reply = await space.run('claim', nodeId, username, token, admission.acceptNewUsers ? 1 : 0, admission.maxUsers,
      authTimeoutMilliseconds + claimMarginMilliseconds, sessions.takeover ? 1 : 0).then(undefined, () => ['unavailable', 'lost'])
    if (reply[0] !== 'ok') {
      // Freed, if its answer was lost: it may have been taken (else it expires); the room it was admitted for ends if
      // nothing else is in it.
      if (reply[1] === 'lost' || this.#admitted.has(token)) {
        this.release(username, token)
      }
      return { claimed: false, refusal: reply[0] as Refusal }
    }
    return { claimed: true, isNewUser: reply[1] === 1, isLinked: reply[2] === 1, token }
  }

  /**
   * Frees a claim, trying again while a cut connection comes back, for a command's timeout; else it expires. A claim
   * admitted into the registry for a room it would have made, in a room left with no user and no claim, ends that
   * incarnation, and removes it from the registry.
   */
  release (username: string, token: string): void {
    const { nodeId, redis, space, registry, log } = this.#parts
    const incarnation = this.#admitted.get(token) ?? ''
    this.#admitted.delete(token)
    redis.whileReconnecting(async () => await redis.commands.release(space.seqKey, space.prefix, username, token, nodeId, incarnation),
      performance.now() + commandTimeoutMilliseconds).then(async ended => {
      if (Number(ended) === 1) {
        await registry.drop(space.name, incarnation)
      }
    }).catch((err: unknown) => {
      log.warn({ err, room: space.name }, 'a room a failed link was admitted for could not be removed from the registry; listing the rooms removes it')
    })
  }

  async link (username: string, token: string, admission: Admission, data: string | undefined): Promise<LinkResult> {
    this.#admitted.delete(token) // the claim is taken by the link, committed or refused
    const replied = this.#commit(username, token, admission, data)
    const committing = this.#committing.get(token) as CommittingLink // made before the script was called
    committing.reply = replied
    const result = await replied
    committing.reply = undefined
    if (committing.change === undefined) {
      this.#committing.delete(token) // refused, or its record applied (or covered) already: nothing waits for it
    }
    if (result.linked) {
      await this.#parts.reader.appliedAt(result.generation)
    }
    return result
  }

  /** Commits a link; a committed one is in flight until its record, or a reload that covers it, is applied. */
  async #commit (username: string, token: string, admission: Admission, data: string | undefined): Promise<LinkResult> {
    const { nodeId, space, sessions, store, reader } = this.#parts
    const replay = sessions.replay
    let answer: (replay: Replay | undefined) => void = () => {}
    const committing: CommittingLink = {
      reply: undefined,
      replay: replay === undefined ? undefined : new Promise(resolve => { answer = resolve }),
      recorded: undefined,
      change: undefined
    }
    this.#committing.set(token, committing)
    const reply = await runAdmitted(this.#parts, admission, false, async incarnation => await space.run('link', nodeId, username, token,
      admission.acceptNewUsers ? 1 : 0, admission.maxUsers, sessions.takeover ? 1 : 0, data ?? '', replay === undefined ? 0 : 1,
      replay?.maxAgeMilliseconds ?? 0, store.confirmedOf(username) ?? '', incarnation).then(undefined, async () => await this.#readBack(committing, answer)))
    if (reply[0] !== 'ok') {
      answer(undefined)
      return { linked: false, refusal: reply[0] as Refusal }
    }
    const replayed = replay === undefined ? undefined : { head: reply[3] as number, lost: reply[4] as number, messages: (reply[5] as string[]).map(encodeText) }
    answer(replayed)
    const generation = reply[1] as number
    if (generation > reader.applied) {
      committing.change = { op: 'link', username, origin: nodeId, node: nodeId, generation, token, isNewUser: reply[2] === '1', data, replay: replayed }
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
  async #readBack (committing: CommittingLink, answer: (replay: Replay | undefined) => void): Promise<ScriptReply> {
    answer(undefined) // the record of the link, if any, waits for this
    const deadline = performance.now() + commandTimeoutMilliseconds
    try {
      await withTimeout(this.#readLogToNow(deadline), commandTimeoutMilliseconds + catchUpMilliseconds, 'the log could not be read back')
    } catch {
      return ['unavailable'] // it may still commit: then its record finds no connection waiting, and it is unlinked
    }
    const generation = committing.recorded
    return generation === undefined ? ['unavailable'] : ['ok', generation, '0', 0, 0, []]
  }

  /** Reads Redis' sequence number (trying again while a cut connection comes back, until `deadline`), and waits until this node applied it. */
  async #readLogToNow (deadline: number): Promise<void> {
    const { redis, space } = this.#parts
    const seq = await redis.whileReconnecting(async () => await redis.commands.get(space.seqKey), deadline)
    if (seq === undefined) {
      throw new Error('Redis does not answer')
    }
    await this.#parts.reader.appliedAt(Number(seq))
  }

  /** The log record of a link of this node is read: it takes its replay, and is in flight no more. */
  async recorded (change: LinkChange): Promise<void> {
    const committing = this.#committing.get(change.token)
    if (committing === undefined) {
      return // a link whose commit this node gave up on: it finds no connection waiting, and is unlinked
    }
    if (committing.reply !== undefined) {
      committing.recorded = change.generation // for a read-back of its commit
    }
    const replay = committing.replay
    if (replay !== undefined) {
      // Its reply, with what the user missed, comes on the other connection, as soon as this record or sooner.
      committing.replay = undefined
      change.replay = await replay
    }
    committing.change = undefined
    if (committing.reply === undefined) {
      this.#committing.delete(change.token)
    }
  }

  /**
   * Applies this node's committed links up to `seq` whose records were not read: a reload covered them, or
   * Redis lost the user space they were made in (they are registered again with the other users linked here).
   */
  applyCovered (seq: number): void {
    const covered: LinkChange[] = []
    for (const { change } of this.#committing.values()) {
      if (change !== undefined && change.generation <= seq) {
        covered.push(change)
      }
    }
    for (const change of covered.sort((a, b) => a.generation - b.generation)) {
      this.#committing.delete(change.token) // its record, which would have taken the replay, is never read
      this.#parts.sink.apply(change)
      this.#parts.windows.follow(change)
    }
  }

  /** The replies of the links being committed now. */
  replying (): Array<Promise<LinkResult>> {
    const replies: Array<Promise<LinkResult>> = []
    for (const { reply } of this.#committing.values()) {
      if (reply !== undefined) {
        replies.push(reply)
      }
    }
    return replies
  }
}
