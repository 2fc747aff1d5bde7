/**
 * The Lua scripts of the Redis backend. Every change to the user space is one script, so that it is
 * atomic: a claim cannot be taken twice, a link cannot be made for a user that is linked, and a
 * fenced unlink cannot end a link it does not name. Each change appends one record to the log
 * (a stream whose entry ids are the sequence numbers), which every node reads in order.
 *
 * KEYS[1] is the sequence counter, `{namespace}:seq`: it routes the script to the slot of the
 * namespace's hash tag on Redis Cluster; every other key shares that tag, so the script builds their
 * names from the prefix in ARGV[1]. ARGV[2] is the epoch the node knows: a script that finds another
 * (Redis lost its data) answers 'epoch' and changes nothing, so a node never writes into a user space
 * it has not recovered.
 *
 * Keys, under the prefix `{namespace}`:
 *   :epoch            a random id set when the user space is created; its loss reveals lost data
 *   :seq              the sequence number of the last record (and the generation of a link)
 *   :users            sorted set: username -> sequence number of its join (join order)
 *   :links            hash: username -> "<node> <generation>" of a linked user
 *   :node:<id>        set: the users linked to one node, for the sweep of a dead node
 *   :nodes            sorted set: node id -> time of its last heartbeat (milliseconds, Redis' clock)
 *   :claim:<user>     the token of a pending link, expiring after the authentication timeout
 *   :log              stream of records, trimmed to about `maxLogLength` entries
 * Channels: `{namespace}:broadcast` and `{namespace}:to:<node>` carry application messages.
 */

/** The log keeps about this many records: a node that falls further behind reloads the user space. */
export const maxLogLength = 10_000

const prelude = `
local P = ARGV[1]
local function epochIs (epoch)
  return redis.call('GET', P .. ':epoch') == epoch
end
local function record (op, user, origin, ...)
  local seq = redis.call('INCR', KEYS[1])
  redis.call('XADD', P .. ':log', 'MAXLEN', '~', ${maxLogLength}, seq .. '-0', 'op', op, 'u', user, 'o', origin, ...)
  return seq
end
local function isAlive (node)
  return redis.call('ZSCORE', P .. ':nodes', node) ~= false
end
local function parseLink (link)
  local node, generation = string.match(link, '^(%S+) (%d+)$')
  return node, generation
end
`

/** ARGV: prefix, epoch, node, username, token, acceptNewUsers (1/0), maxUsers, ttl. Answers {'ok', isNewUser} or {refusal}. */
export const claimScript = prelude + `
if not epochIs(ARGV[2]) then return {'epoch'} end
if not isAlive(ARGV[3]) then return {'dead'} end
local user = ARGV[4]
local exists = redis.call('ZSCORE', P .. ':users', user)
if not exists and ARGV[6] == '0' then return {'not-accepting-new-users'} end
if redis.call('HEXISTS', P .. ':links', user) == 1 or redis.call('EXISTS', P .. ':claim:' .. user) == 1 then
  return {'already-linked'}
end
if not exists and redis.call('ZCARD', P .. ':users') >= tonumber(ARGV[7]) then return {'full'} end
redis.call('SET', P .. ':claim:' .. user, ARGV[5], 'PX', ARGV[8])
if exists then return {'ok', 0} end
return {'ok', 1}
`

/** ARGV: prefix, username, token. */
export const releaseScript = prelude + `
if redis.call('GET', P .. ':claim:' .. ARGV[2]) == ARGV[3] then
  redis.call('DEL', P .. ':claim:' .. ARGV[2])
end
return 1
`

/** ARGV: prefix, epoch, node, username, token, acceptNewUsers (1/0), maxUsers. Answers {'ok', generation} or {refusal}. */
export const linkScript = prelude + `
if not epochIs(ARGV[2]) then return {'epoch'} end
if not isAlive(ARGV[3]) then return {'dead'} end
local node, user = ARGV[3], ARGV[4]
local claim = P .. ':claim:' .. user
if redis.call('GET', claim) ~= ARGV[5] then return {'unavailable'} end -- the claim expired: its authentication outlived it
redis.call('DEL', claim)
if redis.call('HEXISTS', P .. ':links', user) == 1 then return {'already-linked'} end
local exists = redis.call('ZSCORE', P .. ':users', user)
if not exists then
  if ARGV[6] == '0' then return {'not-accepting-new-users'} end
  if redis.call('ZCARD', P .. ':users') >= tonumber(ARGV[7]) then return {'full'} end
end
local isNew = '0'
if not exists then isNew = '1' end
local seq = redis.call('GET', KEYS[1])
local generation = (tonumber(seq) or 0) + 1
record('link', user, node, 'n', node, 'g', generation, 't', ARGV[5], 'new', isNew)
if not exists then redis.call('ZADD', P .. ':users', generation, user) end
redis.call('HSET', P .. ':links', user, node .. ' ' .. generation)
redis.call('SADD', P .. ':node:' .. node, user)
return {'ok', generation}
`

/** ARGV: prefix, epoch, origin, username, maxUsers. Answers {'ok', seq} or {refusal}. */
export const joinScript = prelude + `
if not epochIs(ARGV[2]) then return {'epoch'} end
local user = ARGV[4]
if redis.call('ZSCORE', P .. ':users', user) then return {'exists'} end
if redis.call('ZCARD', P .. ':users') >= tonumber(ARGV[5]) then return {'full'} end
local seq = record('join', user, ARGV[3])
redis.call('ZADD', P .. ':users', seq, user)
return {'ok', seq}
`

/**
 * ARGV: prefix, epoch, origin, username, generation ('' for whatever link the user has). Answers
 * {'ok', seq}, {'ok', 0} for a fenced unlink of a link that ended, or {refusal}.
 */
export const unlinkScript = prelude + `
if not epochIs(ARGV[2]) then return {'epoch'} end
local user = ARGV[4]
local link = redis.call('HGET', P .. ':links', user)
if not link then
  if ARGV[5] ~= '' then return {'ok', 0} end
  if redis.call('ZSCORE', P .. ':users', user) then return {'not-linked'} end
  return {'unknown'}
end
local node, generation = parseLink(link)
if ARGV[5] ~= '' and ARGV[5] ~= generation then return {'ok', 0} end
redis.call('HDEL', P .. ':links', user)
redis.call('SREM', P .. ':node:' .. node, user)
return {'ok', record('unlink', user, ARGV[3], 'g', generation)}
`

/** ARGV: prefix, epoch, origin, username. Answers {'ok', seq} or {'unknown'}. */
export const leaveScript = prelude + `
if not epochIs(ARGV[2]) then return {'epoch'} end
local user = ARGV[4]
if not redis.call('ZSCORE', P .. ':users', user) then return {'unknown'} end
local link = redis.call('HGET', P .. ':links', user)
if link then
  local node = parseLink(link)
  redis.call('HDEL', P .. ':links', user)
  redis.call('SREM', P .. ':node:' .. node, user)
end
redis.call('ZREM', P .. ':users', user)
return {'ok', record('leave', user, ARGV[3])}
`

/**
 * ARGV: prefix, epoch, node, nodeTimeoutMilliseconds. The node's heartbeat, and the sweep of every node
 * silent for longer than the timeout: its users are unlinked, once, by whichever node sweeps first.
 * Answers {'ok', swept users} or {'epoch'}.
 */
export const heartbeatScript = prelude + `
if not epochIs(ARGV[2]) then return {'epoch'} end
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
redis.call('ZADD', P .. ':nodes', now, ARGV[3])
local swept = 0
local dead = redis.call('ZRANGEBYSCORE', P .. ':nodes', '-inf', '(' .. (now - tonumber(ARGV[4])))
for _, node in ipairs(dead) do
  redis.call('ZREM', P .. ':nodes', node)
  local users = redis.call('SMEMBERS', P .. ':node:' .. node)
  local order = {}
  for _, user in ipairs(users) do order[user] = tonumber(redis.call('ZSCORE', P .. ':users', user)) or 0 end
  table.sort(users, function (a, b) return order[a] < order[b] end) -- unlinked in join order
  for _, user in ipairs(users) do
    local link = redis.call('HGET', P .. ':links', user)
    if link then
      local linkedTo, generation = parseLink(link)
      if linkedTo == node then
        redis.call('HDEL', P .. ':links', user)
        record('unlink', user, ARGV[3], 'g', generation)
        swept = swept + 1
      end
    end
  end
  redis.call('DEL', P .. ':node:' .. node)
end
return {'ok', swept}
`

/**
 * ARGV: prefix, new epoch, node, then the users linked to this node as username, generation, join order.
 * Registers the node, creating the user space (and its epoch) if there is none, and registering the
 * given users again where Redis lost them: after a flush, each node brings back the users linked to
 * it, in the order they had. Answers {epoch, seq, users and their join order, links}: the user space.
 */
export const registerScript = prelude + `
local epoch = redis.call('GET', P .. ':epoch')
if not epoch then
  epoch = ARGV[2]
  redis.call('SET', P .. ':epoch', epoch)
end
local time = redis.call('TIME')
redis.call('ZADD', P .. ':nodes', tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000), ARGV[3])
local seq = tonumber(redis.call('GET', KEYS[1]) or '0')
for i = 4, #ARGV, 3 do
  local user, generation, order = ARGV[i], tonumber(ARGV[i + 1]), tonumber(ARGV[i + 2])
  if generation > seq then seq = generation end
  if order > seq then seq = order end
  if not redis.call('ZSCORE', P .. ':users', user) then redis.call('ZADD', P .. ':users', order, user) end
  if redis.call('HEXISTS', P .. ':links', user) == 0 then
    redis.call('HSET', P .. ':links', user, ARGV[3] .. ' ' .. generation)
    redis.call('SADD', P .. ':node:' .. ARGV[3], user)
  end
end
redis.call('SET', KEYS[1], seq)
if #ARGV >= 4 then
  -- every node reloads the user space when it reads this
  seq = seq + 1
  redis.call('SET', KEYS[1], seq)
  redis.call('XADD', P .. ':log', 'MAXLEN', '~', ${maxLogLength}, seq .. '-0', 'op', 'restore')
end
return {epoch, seq, redis.call('ZRANGE', P .. ':users', 0, -1, 'WITHSCORES'), redis.call('HGETALL', P .. ':links')}
`

/** ARGV: prefix. The user space as it is: {epoch or false, seq, users and their join order, links}. */
export const snapshotScript = prelude + `
return {redis.call('GET', P .. ':epoch'), tonumber(redis.call('GET', KEYS[1]) or '0'), redis.call('ZRANGE', P .. ':users', 0, -1, 'WITHSCORES'), redis.call('HGETALL', P .. ':links')}
`

/** ARGV: prefix, node. A node that closes leaves the heartbeat set. */
export const deregisterScript = prelude + `
redis.call('ZREM', P .. ':nodes', ARGV[2])
return 1
`
