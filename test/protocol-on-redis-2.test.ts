import t from 'tap'
import { useCluster } from './helper.js'
import { RedisServer } from './redis-server.js'

// The protocol tests again, every instance a one-node cluster on a real Redis: the Redis backend keeps the protocol.
const redis = await RedisServer.start(t)
useCluster(redis.url)
await import('./authenticate.test.js')
await import('./async-listeners.test.js')
await import('./link-race.test.js')
await import('./pending-link-queue.test.js')
await import('./limits.test.js')
await import('./heartbeat.test.js')
await import('./close.test.js')
await import('./typed-messages.test.js')
await import('./already-linked-retries.test.js')
