// The protocol suites sessions again, every instance a one-node cluster on a real Redis: the Redis
// backend keeps the protocol.
import t from 'tap'
import { onRedis } from '../helpers/app.js'
import { RedisServer } from '../helpers/redis-server.js'
import sessions from './sessions.js'
import sessionExtension from './session-extension.js'

const backend = onRedis((await RedisServer.start(t)).url)
for (const suite of [sessions, sessionExtension]) {
  suite(backend)
}
