// The protocol suites authenticate, async-listeners, link-race, pending-link-queue, limits, heartbeat, close, typed-messages, already-linked-retries again, every instance a one-node cluster on a real Redis: the Redis
// backend keeps the protocol.
import t from 'tap'
import { onRedis } from '../helpers/app.js'
import { RedisServer } from '../helpers/redis-server.js'
import authenticate from './authenticate.js'
import asyncListeners from './async-listeners.js'
import linkRace from './link-race.js'
import pendingLinkQueue from './pending-link-queue.js'
import limits from './limits.js'
import heartbeat from './heartbeat.js'
import close from './close.js'
import typedMessages from './typed-messages.js'
import alreadyLinkedRetries from './already-linked-retries.js'

const backend = onRedis((await RedisServer.start(t)).url)
for (const suite of [authenticate, asyncListeners, linkRace, pendingLinkQueue, limits, heartbeat, close, typedMessages, alreadyLinkedRetries]) {
  suite(backend)
}
