// The protocol suites authenticate, async-listeners, link-race, pending-link-queue, limits, heartbeat, close, typed-messages, already-linked-retries, on the in-memory backend.
import { inMemory } from '../helpers/app.js'
import authenticate from './authenticate.js'
import asyncListeners from './async-listeners.js'
import linkRace from './link-race.js'
import pendingLinkQueue from './pending-link-queue.js'
import limits from './limits.js'
import heartbeat from './heartbeat.js'
import close from './close.js'
import typedMessages from './typed-messages.js'
import alreadyLinkedRetries from './already-linked-retries.js'

for (const suite of [authenticate, asyncListeners, linkRace, pendingLinkQueue, limits, heartbeat, close, typedMessages, alreadyLinkedRetries]) {
  suite(inMemory)
}
