import type { EncodedFrame } from '../../frames.js'
import type { Sessions } from '../../options/resolve.js'
import { type Admission, type ClaimResult, type Commit, CommitRefused, type LeaveCause, type LinkResult, type Store, type UnlinkCause } from '../backend.js'
import type { RedisParts } from './parts.js'
import type { ScriptName } from './scripts.js'
import type { ScriptReply } from './connections.js'
import { runAdmitted } from './registry.js'

/**
 * The store of a cluster's user space, in Redis: every change is one script, committed, then applied here when
 * the log reader reads its record (a commit resolves then). With replay on, the messages of every user are kept
 * in Redis too; what this node's users confirmed is saved with the next heartbeat, or with their unlink.
 */
export class RedisStore implements Store {
  readonly #parts: RedisParts
  /**
   * With replay on: what this node's users confirmed since the last heartbeat, which saves it, as
   * `<generation>:<number>` (the link that confirmed, so that Redis can tell the user's life it belongs to).
   */
  readonly #confirmed = new Map<string, string>()

  constructor (parts: RedisParts) {
    this.#parts = parts
  }

  claim (username: string, admission: Admission): Promise<ClaimResult> {
    return this.#parts.links.claim(username, admission)
  }

  release (username: string, token: string): void {
    this.#parts.links.release(username, token)
  }

  link (username: string, token: string, admission: Admission, data: string | undefined): Promise<LinkResult> {
    return this.#parts.links.link(username, token, admission, data)
  }

  async join (username: string, admission: Admission): Commit {
    await this.#parts.served() // a room this node cannot serve (Redis is away) refuses every change
    const { nodeId, space } = this.#parts
    const reply = await runAdmitted(this.#parts, admission, true, async incarnation => await space.run('join', nodeId, username, admission.maxUsers, incarnation))
    await this.#applied(reply)
  }

  async unlink (username: string, generation: number | undefined, cause: UnlinkCause): Commit {
    const confirmed = this.#confirmed.get(username)
    this.#confirmed.delete(username)
    try {
      await this.#change('unlink', this.#parts.nodeId, username, generation ?? '', this.#parts.sessions.windowMilliseconds, confirmed ?? '', cause)
    } catch (err) {
      if (generation !== undefined && (err as CommitRefused).refusal === 'unavailable') {
        this.#parts.liveness.owe(username, generation, cause) // a connection closed while Redis was away: its link still ends
      }
      throw err
    }
  }

  leave (username: string, cause: LeaveCause): Commit {
    return this.#change('leave', this.#parts.nodeId, username, cause)
  }

  /** Commits a change and waits until it is applied here. */
  async #change (name: ScriptName, ...args: Array<string | number>): Promise<void> {
    await this.#parts.served() // a room this node cannot serve (Redis is away) refuses every change
    await this.#applied(await this.#parts.space.run(name, ...args))
  }

  /** The reply of a change: refused, or committed (then it resolves when the change is applied here). */
  async #applied (reply: ScriptReply): Promise<void> {
    if (reply[0] !== 'ok') {
      throw new CommitRefused(reply[0] as CommitRefused['refusal'])
    }
    await this.#parts.reader.appliedAt(reply[1] as number)
  }

  post (username: string | undefined, skip: string | undefined, frame: EncodedFrame): void {
    const { redis, space, nodeId, log, sessions } = this.#parts
    const replay = sessions.replay as NonNullable<Sessions['replay']>
    // A room this node just started to serve: the message is kept once it is served (a broadcast needs no load here).
    this.#parts.served().then(async () => await redis.timed('post', redis.commands.post(space.seqKey, space.prefix, space.epoch, nodeId,
      username ?? '', skip ?? '', replay.maxMessages, replay.maxAgeMilliseconds, frame.payload.toString()))).then(undefined, (err: unknown) => {
      log.warn({ err, username }, 'a message could not be kept for replay and was lost: Redis does not answer')
    })
  }

  confirm (username: string, generation: number, number: number): void {
    this.#confirmed.set(username, `${generation}:${number}`) // saved by the next heartbeat, or by the unlink
  }

  /** What `username` confirmed since the last heartbeat, which its link saves. */
  confirmedOf (username: string): string | undefined {
    return this.#confirmed.get(username)
  }

  /** What every user confirmed since the last heartbeat, as username and confirmation pairs, for the heartbeat to save. */
  takeConfirmed (): string[] {
    const confirmed: string[] = []
    for (const [username, number] of this.#confirmed) {
      confirmed.push(username, number)
    }
    this.#confirmed.clear()
    return confirmed
  }

  /** A user left: what it confirmed goes with its messages. */
  forgetConfirmed (username: string): void {
    this.#confirmed.delete(username)
  }
}
