// The rooms suite again, every instance a one-node cluster on a real Redis: rooms hold on the Redis backend.
import t from 'tap'
import { onRedis } from '../helpers/app.js'
import { RedisServer } from '../helpers/redis-server.js'
import rooms from './rooms.js'

rooms(onRedis((await RedisServer.start(t)).url))
