import { randomUUID } from 'node:crypto'
import type { Admission, Refusal } from '../backend.js'
import type { RedisConnections, ScriptReply } from './connections.js'
import type { RedisParts } from './parts.js'

/** A room's incarnation with rooms off: there is no registry, and every change admits the endpoint's one room. */
export const noRegistry = '-'

/**
 * The registry of the rooms that exist in the cluster, under the namespace's tag (see lua-rooms.ts): what `getRooms()`
 * lists and `maxRooms` bounds. A change that may make a room is admitted first, and given the room's incarnation;
 * the node whose change ended the room removes it. A claim that never became a link may leave an entry behind: entries
 * older than a claim lives, of rooms with no user, are pruned when the rooms are listed, and before a room is refused
 * for `maxRooms`.
 */
export class RoomRegistry {
  readonly #redis: RedisConnections
  /** How long an incarnation is answered as it is: longer than a claim lives. */
  readonly #ttl: number

  constructor (redis: RedisConnections, claimMilliseconds: number) {
    this.#redis = redis
    this.#ttl = claimMilliseconds
  }

  get #nodesKey (): string {
    return `${this.#redis.prefix}:nodes`
  }

  /**
   * Admits a change that may create `room`: answers its incarnation, or the refusal of a room that may not be made.
   * `forJoin`: the API's join, which creates rooms even with `acceptNewRooms` off; `renew`: the room refused the
   * incarnation given before (it ended).
   */
  async admit (room: string, admission: Admission, forJoin: boolean, renew: boolean): Promise<string | Refusal | 'too-many-rooms'> {
    const admit = async (): Promise<ScriptReply> => await this.#redis.commands.admitRoom(this.#nodesKey, this.#redis.prefix, room, randomUUID(),
      forJoin || admission.acceptNewRooms ? 1 : 0, admission.maxRooms, renew ? 1 : 0, this.#ttl, forJoin ? 'too-many-rooms' : 'full')
    let reply = await admit()
    if (reply[0] === 'full' || reply[0] === 'too-many-rooms') {
      await this.prune()
      reply = await admit()
    }
    return reply[0] === 'ok' ? reply[1] as string : reply[0] as Refusal
  }

  /** `room` ended with `incarnation`: it leaves the registry, unless it started again since. */
  drop (room: string, incarnation: string): Promise<ScriptReply> {
    return this.#redis.commands.dropRoom(this.#nodesKey, this.#redis.prefix, room, incarnation)
  }

  /** The rooms that exist in the cluster, sorted, after pruning what failed links left. */
  async names (): Promise<string[]> {
    return (await this.prune()).sort()
  }

  /** Removes the entries a claim that never became a link left (older than a claim lives, their room without users); answers the rest. */
  async prune (): Promise<string[]> {
    const redis = this.#redis
    const [seconds, micros] = await redis.commands.time()
    const now = Number(seconds) * 1000 + Math.floor(Number(micros) / 1000)
    const entries = await redis.commands.hgetall(`${redis.prefix}:rooms`)
    const names: string[] = []
    await Promise.all(Object.entries(entries).map(async ([room, incarnation]) => {
      const made = Number(/^(\d+)-/.exec(incarnation)?.[1])
      if (now - made >= this.#ttl && await redis.commands.exists(`${redis.prefixOf(room)}:users`) === 0) {
        await this.drop(room, incarnation)
      } else {
        names.push(room)
      }
    }))
    return names
  }
}

/**
 * Runs a change that may give room `space` its first user (a link, a join) with an incarnation the registry admitted:
 * none asked while this node sees users in the room (the script checks), a new one when the script finds the room
 * ended. Answers the script's reply, or the registry's refusal as one.
 */
export async function runAdmitted (parts: RedisParts, admission: Admission, forJoin: boolean, run: (incarnation: string) => Promise<ScriptReply>): Promise<ScriptReply> {
  const { options, registry, space, sink } = parts
  if (!options.rooms) {
    return await run(noRegistry)
  }
  const admit = async (renew: boolean): Promise<string> => await registry.admit(space.name, admission, forJoin, renew).catch(() => 'unavailable')
  const refused = (incarnation: string): ScriptReply | undefined => incarnation === '' || /^\d+-/.test(incarnation)
    ? undefined
    : [incarnation]
  let incarnation = sink.users.size > 0 ? '' : await admit(false)
  let reply = refused(incarnation) ?? await run(incarnation)
  while (reply[0] === 'stale') {
    // The room ended since its incarnation was given (or since this node saw its users): a new one. Each refusal means
    // the room ended again meanwhile, so this ends unless rooms keep starting and ending under it.
    incarnation = await admit(incarnation !== '')
    reply = refused(incarnation) ?? await run(incarnation)
  }
  return reply
}
