import type { FastifyBaseLogger } from 'fastify'
import { type EncodedFrame, encodeText } from '../../frames.js'
import type { BackendSink, Bus } from '../backend.js'
import { keepSubscribed, type RedisConnections } from './connections.js'
import type { RedisSpace } from './space.js'
import type { Refusals } from './refusals.js'
import { broadcastOf, deliveryOf, readPublication } from './wire.js'

/**
 * The message bus of a cluster, on Redis pub/sub: a channel for each node, and one for broadcasts. A broadcast
 * reaches this node's users at once, without a round trip.
 */
export class RedisBus implements Bus {
  readonly #nodeId: string
  readonly #redis: RedisConnections
  readonly #space: RedisSpace
  readonly #refusals: Refusals
  readonly #log: FastifyBaseLogger
  #sink!: BackendSink

  constructor (nodeId: string, redis: RedisConnections, space: RedisSpace, refusals: Refusals, log: FastifyBaseLogger) {
    this.#nodeId = nodeId
    this.#redis = redis
    this.#space = space
    this.#refusals = refusals
    this.#log = log
  }

  /** Listens to this node's channel and the broadcast channel, and again each time the subscriber connects again. */
  async start (sink: BackendSink): Promise<void> {
    this.#sink = sink
    const redis = this.#redis
    redis.subscriber.on('message', (channel: string, message: string) => this.#onMessage(channel === redis.nodeChannel, message))
    await keepSubscribed(redis.subscriber, () => [this.#space.broadcastChannel, redis.nodeChannel], this.#log)
  }

  deliver (node: string, username: string, frame: EncodedFrame): void {
    this.#publish(this.#redis.channelOf(node), deliveryOf(username, frame.payload.toString()))
  }

  broadcast (frame: EncodedFrame, skip: string | undefined): void {
    this.#sink.broadcast(frame, skip)
    this.#publish(this.#space.broadcastChannel, broadcastOf(this.#nodeId, skip, frame.payload.toString()))
  }

  /** One PUBLISH for the whole cluster; a message published while Redis is away is lost, as on any pub/sub. */
  #publish (channel: string, message: string): void {
    this.#redis.commands.publish(channel, message).then(undefined, (err: unknown) => {
      this.#log.debug({ err }, 'a message to other nodes was lost: Redis does not answer')
    })
  }

  /** A publication of another node (or of the `post` script, with replay on). */
  #onMessage (toNode: boolean, message: string): void {
    const publication = readPublication(message, toNode, this.#nodeId)
    switch (publication.kind) {
      case 'refused':
        this.#refusals.refuse('publication', publication.reason)
        return
      case 'deliver': {
        const { recipients, text } = publication
        if (typeof recipients === 'string') {
          this.#sink.deliver(recipients, encodeText(text), 0)
          return
        }
        const frame = encodeText(text)
        for (let i = 0; i < recipients.length; i += 2) {
          this.#sink.deliver(recipients[i] as string, frame, recipients[i + 1] as number) // with replay: the users of this node, numbered
        }
        return
      }
      case 'own':
        return // this node sent it to its own users already
      case 'broadcast':
        this.#sink.broadcast(encodeText(publication.text), publication.skip)
    }
  }
}
