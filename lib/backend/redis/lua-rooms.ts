/**
 * The node's scripts with rooms on, under the namespace's own hash tag (`{namespace}`): KEYS[1] is `{namespace}:nodes`,
 * ARGV[1] the prefix. Each room is a user space under a hash tag of its own (`{namespace:room}`), which these never
 * touch (on a Redis Cluster they are on other shards): a node beats here, and in each room it serves.
 *
 * - `served:<node>`: the rooms a node serves (added to before it registers in one). When the node dies, or starts
 *   again, they go to `expiring`, due at once, and a node that takes them serves them until a heartbeat in each swept
 *   the dead node's links there.
 * - `expiring`: the rooms no node serves that hold a reconnection window, by its deadline. A heartbeat takes those that
 *   are due (they become its own to serve), so that a room no instance serves still ends.
 * - `rooms`: the registry of the rooms that exist, by incarnation (see `admits` in lua-prelude.ts), which `getRooms()`
 *   lists and `maxRooms` bounds cluster-wide.
 */

const now = `
local function now ()
  local time = redis.call('TIME')
  return tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
end
local P = ARGV[1]
-- The rooms of a node that is gone are due at once.
local function orphan (node, time)
  for _, room in ipairs(redis.call('SMEMBERS', P .. ':served:' .. node)) do redis.call('ZADD', P .. ':expiring', time, room) end
  redis.call('DEL', P .. ':served:' .. node)
end
`

/** ARGV: prefix, node, life. Registers a node; what its previous life served (it died, and started again with the same id) is due. */
export const nodeRegisterScript = now + `
local time = now()
redis.call('SET', P .. ':life:' .. ARGV[2], ARGV[3])
redis.call('ZADD', KEYS[1], time, ARGV[2])
orphan(ARGV[2], time)
return 1
`

/**
 * ARGV: prefix, node, nodeTimeoutMilliseconds, life, batch. The node's heartbeat: the rooms of the nodes silent for
 * longer than the timeout are due; up to batch due rooms become this node's to serve. Answers {'ok', 1 when this node
 * was not known (declared dead, or Redis lost its data: it tells again which rooms it serves), nodes alive, nodes
 * declared dead, rooms to serve} or {'replaced'}.
 */
export const nodeBeatScript = now + `
local life = redis.call('GET', P .. ':life:' .. ARGV[2])
if life and life ~= ARGV[4] then return {'replaced'} end
local time = now()
local known = redis.call('ZSCORE', KEYS[1], ARGV[2])
redis.call('ZADD', KEYS[1], time, ARGV[2])
if not life then redis.call('SET', P .. ':life:' .. ARGV[2], ARGV[4]) end
local dead = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. (time - tonumber(ARGV[3])))
for _, node in ipairs(dead) do
  redis.call('ZREM', KEYS[1], node)
  orphan(node, time)
end
local due = redis.call('ZRANGEBYSCORE', P .. ':expiring', '-inf', time, 'LIMIT', 0, tonumber(ARGV[5]))
for _, room in ipairs(due) do
  redis.call('ZREM', P .. ':expiring', room)
  redis.call('SADD', P .. ':served:' .. ARGV[2], room)
end
return {'ok', known and 0 or 1, redis.call('ZCARD', KEYS[1]), #dead, due}
`

/** ARGV: prefix, node, then rooms. The node serves these rooms (before it registers in them). */
export const serveScript = now + `
redis.call('SADD', P .. ':served:' .. ARGV[2], unpack(ARGV, 3))
return 1
`

/**
 * ARGV: prefix, node, room, deadline (0: none). The node no longer serves the room; the next reconnection window that
 * ends in it, if any, is left to whichever node's heartbeat finds it due.
 */
export const unserveScript = now + `
redis.call('SREM', P .. ':served:' .. ARGV[2], ARGV[3])
local deadline = tonumber(ARGV[4])
if deadline > 0 then
  local known = tonumber(redis.call('ZSCORE', P .. ':expiring', ARGV[3]))
  if not known or known > deadline then redis.call('ZADD', P .. ':expiring', deadline, ARGV[3]) end
end
return 1
`

/**
 * ARGV: prefix, room, a random id, acceptNewRooms (1/0), maxRooms, renew (1/0), ttl, the refusal of one room too many
 * ('full' for a link, 'too-many-rooms' for a join). The registry admits a change that
 * may create the room. An incarnation is `<time>-<random id>`; the room's is answered, {'ok', incarnation}, unless it
 * is older than ttl (a claim lives less: one that did not become a link may have left it, and `getRooms()` prunes such
 * entries) or renew is asked (the room refused it: it ended), when a new one is given. A room that is not registered
 * gets a new one, or {'no-room'} or the refusal of one room too many when it may not be made.
 */
export const admitRoomScript = now + `
local current = redis.call('HGET', P .. ':rooms', ARGV[2])
local time = now()
if current and ARGV[6] == '0' then
  local made = tonumber(string.match(current, '^(%d+)-'))
  if made and time - made < tonumber(ARGV[7]) then return {'ok', current} end
end
if not current then
  if ARGV[4] == '0' then return {'no-room'} end
  if redis.call('HLEN', P .. ':rooms') >= tonumber(ARGV[5]) then return {ARGV[8]} end
end
local incarnation = time .. '-' .. ARGV[3]
redis.call('HSET', P .. ':rooms', ARGV[2], incarnation)
return {'ok', incarnation}
`

/** ARGV: prefix, room, incarnation. The room ended: it leaves the registry, unless it started again since. */
export const dropRoomScript = now + `
if redis.call('HGET', P .. ':rooms', ARGV[2]) == ARGV[3] then redis.call('HDEL', P .. ':rooms', ARGV[2]) end
return 1
`

/** ARGV: prefix, node. A node that closes leaves the heartbeat set (its rooms were given up one by one). */
export const nodeDeregisterScript = now + `
redis.call('ZREM', KEYS[1], ARGV[2])
orphan(ARGV[2], now())
return 1
`
