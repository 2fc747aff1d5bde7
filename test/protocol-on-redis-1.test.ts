import t from 'tap'
import { useCluster } from './helper.js'
import { RedisServer } from './redis-server.js'

// The protocol tests again, every instance a one-node cluster on a real Redis: the Redis backend keeps the protocol.
const redis = await RedisServer.start(t)
useCluster(redis.url)
await import('./link.test.js')
await import('./leave.test.js')
await import('./unlink.test.js')
await import('./messages.test.js')
await import('./krmx-client.test.js')
await import('./listeners.test.js')
await import('./api.test.js')
await import('./route.test.js')
await import('./jwt.test.js')
await import('./user-queries.test.js')
