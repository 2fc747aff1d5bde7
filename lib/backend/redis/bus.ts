import { type EncodedFrame, encodeText } from '../../frames.js'
import type { Bus } from '../backend.js'
import type { RedisParts } from './parts.js'
import { broadcastOf, deliveryOf, readPublication } from './wire.js'

/**
 * The message bus of a room in a cluster, on Redis pub/sub: a channel for each node, and one for broadcasts, each the
 * room's. A broadcast reaches this node's users at once, without a round trip, and needs no load of the room.
 */
export class RedisBus implements Bus {
  readonly #parts: RedisParts

  constructor (parts: RedisParts) {
    this.#parts = parts
  }

  /** Listens to the room's broadcasts and its messages to this node, and again each time the subscriber connects again. */
  async start (): Promise<void> {
    const { redis, space } = this.#parts
    await redis.messages.add([
      [space.broadcastChannel, message => this.#onMessage(false, message)],
      [space.nodeChannel, message => this.#onMessage(true, message)]
    ])
  }

  stop (): void {
    const { redis, space } = this.#parts
    redis.messages.remove([space.broadcastChannel, space.nodeChannel])
  }

  deliver (node: string, username: string, frame: EncodedFrame): void {
    this.#publish(this.#parts.space.channelOf(node), deliveryOf(username, frame.payload.toString()))
  }

  broadcast (frame: EncodedFrame, skip: string | undefined): void {
    const { sink, space, nodeId } = this.#parts
    sink.broadcast(frame, skip)
    this.#publish(space.broadcastChannel, broadcastOf(nodeId, skip, frame.payload.toString()))
  }

  /** One PUBLISH for the whole cluster; a message published while Redis is away is lost, as on any pub/sub. */
  #publish (channel: string, message: string): void {
    this.#parts.redis.commands.publish(channel, message).then(undefined, (err: unknown) => {
      this.#parts.log.debug({ err }, 'a message to other nodes was lost: Redis does not answer')
    })
  }

  /** A publication of another node (or of the `post` script, with replay on). */
  #onMessage (toNode: boolean, message: string): void {
    const { sink, refusals, nodeId } = this.#parts
    const publication = readPublication(message, toNode, nodeId)
    switch (publication.kind) {
      case 'refused':
        refusals.refuse('publication', publication.reason)
        return
      case 'deliver': {
        const { recipients, text } = publication
        if (typeof recipients === 'string') {
          sink.deliver(recipients, encodeText(text), 0)
          return
        }
        const frame = encodeText(text)
        for (let i = 0; i < recipients.length; i += 2) {
          sink.deliver(recipients[i] as string, frame, recipients[i + 1] as number) // with replay: the users of this node, numbered
        }
        return
      }
      case 'own':
        return // this node sent it to its own users already
      case 'broadcast':
        sink.broadcast(encodeText(publication.text), publication.skip)
    }
  }
}
