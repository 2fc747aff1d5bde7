import t from 'tap'
import { useCluster } from './helper.js'
import { RedisServer } from './redis-server.js'

// The session tests again, every instance a one-node cluster on a real Redis: the window, replay, takeover
// and user data kept in Redis behave as in one process.
const redis = await RedisServer.start(t)
useCluster(redis.url)
await import('./sessions.test.js')
