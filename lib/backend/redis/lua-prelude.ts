/**
 * The Lua scripts of the Redis backend. Every change to the user space is one script, so that it is
 * atomic: a claim cannot be taken twice, a link cannot be made for a user that is linked, and a
 * fenced unlink cannot end a link it does not name. Each change appends one record to the log
 * (a stream whose entry ids are the sequence numbers), and publishes it on the channel of the same name, from which
 * every node applies the records in order (reading the stream for what it missed).
 *
 * KEYS[1] is the sequence counter, `{namespace}:seq`: it routes the script to the slot of the
 * namespace's hash tag on Redis Cluster; every other key shares that tag, so the script builds their
 * names from the prefix in ARGV[1]. ARGV[2] is the epoch the node knows: a script that finds another
 * (Redis lost its data) answers 'epoch' and changes nothing, so a node never writes into a user space
 * it has not recovered.
 *
 * Every key and channel, under the prefix `{namespace}`, is listed once, in docs/scaling-out.md#redis-keys.
 */

/** How many users whose reconnection window ended one script makes leave, at most: a batch keeps Redis responsive. */
export const windowBatch = 1_000

/** The log keeps about this many records: a node that falls further behind reloads the user space. */
export const maxLogLength = 10_000

export const prelude = `
local P = ARGV[1]
local function epochIs (epoch)
  return redis.call('GET', P .. ':epoch') == epoch
end
-- Removes the entries of a stream past n-0 (which only another program adds: an XADD with an automatic id) and sets
-- its last id back to n-0, so that entries numbered after n can be appended again. Answers how many it removed.
local function heal (key, n)
  local foreign = redis.call('XRANGE', key, '(' .. n .. '-0', '+')
  for _, entry in ipairs(foreign) do redis.call('XDEL', key, entry[1]) end
  if #foreign > 0 then redis.call('XSETID', key, n .. '-0') end
  return #foreign
end
-- Appends entry n of a stream (log records, a user's messages), healing the stream first when a foreign entry is past
-- it, so that a script never fails halfway through its writes.
local function append (key, n, maxlen, approximate, ...)
  local function add (call, ...)
    if approximate then return call('XADD', key, 'MAXLEN', '~', maxlen, n .. '-0', ...) end
    return call('XADD', key, 'MAXLEN', maxlen, n .. '-0', ...)
  end
  local added = add(redis.pcall, ...)
  if type(added) == 'table' and added.err then
    heal(key, n - 1)
    add(redis.call, ...)
  end
end
-- Appends record n of the log, and publishes it on the channel of the log, where every node that serves the user
-- space reads it: '<n>' then a newline then the record's fields and values as a JSON array.
local function appendRecord (seq, fields)
  for i, value in ipairs(fields) do
    if type(value) == 'number' then fields[i] = string.format('%d', value) end
  end
  append(P .. ':log', seq, ${maxLogLength}, true, unpack(fields))
  redis.call('PUBLISH', P .. ':log', seq .. '\\n' .. cjson.encode(fields))
end
local function record (op, user, origin, ...)
  local seq = redis.call('INCR', KEYS[1])
  appendRecord(seq, {'op', op, 'u', user, 'o', origin, ...})
  return seq
end
local function isAlive (node)
  return redis.call('ZSCORE', P .. ':nodes', node) ~= false
end
local function parseLink (link)
  local node, generation = string.match(link, '^(%S+) (%d+)$')
  return node, generation
end
local function now ()
  local time = redis.call('TIME')
  return tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
end
local function startWindow (user, window)
  if tonumber(window) > 0 then redis.call('ZADD', P .. ':expiry', now() + tonumber(window), user) end
end
-- Ends the links of a node that is gone (silent too long, or started again as a new life), in join order, once:
-- the unlinks are recorded with origin as their node. Answers how many it unlinked.
local function sweepNode (node, origin, window)
  local users = redis.call('SMEMBERS', P .. ':node:' .. node)
  local order = {}
  for _, user in ipairs(users) do order[user] = tonumber(redis.call('ZSCORE', P .. ':users', user)) or 0 end
  table.sort(users, function (a, b) return order[a] < order[b] end)
  local swept = 0
  for _, user in ipairs(users) do
    local link = redis.call('HGET', P .. ':links', user)
    if link then
      local linkedTo, generation = parseLink(link)
      if linkedTo == node then
        redis.call('HDEL', P .. ':links', user)
        startWindow(user, window)
        record('unlink', user, origin, 'g', generation, 'c', 'node_death')
        swept = swept + 1
      end
    end
  end
  redis.call('DEL', P .. ':node:' .. node)
  return swept
end
-- A confirmation '<generation>:<number>': the last message a link of that generation confirmed. It counts only in
-- the life of the user that link was part of: a user that left since (and maybe joined again, numbering anew) is not
-- confirmed for, so a confirmation never outlives its user.
local function confirm (user, confirmation)
  local generation, number = string.match(confirmation, '^(%d+):(%d+)$')
  local order = tonumber(redis.call('ZSCORE', P .. ':users', user))
  if not generation or not order or order > tonumber(generation) then return end
  local n = tonumber(number)
  if n > (tonumber(redis.call('HGET', P .. ':mack', user)) or 0) then
    redis.call('HSET', P .. ':mack', user, n)
    redis.call('XTRIM', P .. ':mail:' .. user, 'MINID', (n + 1) .. '-0')
  end
end
local function leaveUser (user, origin, cause)
  local link = redis.call('HGET', P .. ':links', user)
  if link then
    local node = parseLink(link)
    redis.call('HDEL', P .. ':links', user)
    redis.call('SREM', P .. ':node:' .. node, user)
  end
  redis.call('ZREM', P .. ':users', user)
  redis.call('ZREM', P .. ':expiry', user)
  redis.call('HDEL', P .. ':data', user)
  redis.call('HDEL', P .. ':mhead', user)
  redis.call('HDEL', P .. ':mack', user)
  redis.call('DEL', P .. ':mail:' .. user)
  local inc = redis.call('GET', P .. ':inc')
  if inc and redis.call('EXISTS', P .. ':users') == 0 then
    -- the room ends: its incarnation too, which the leave's node removes from the registry
    redis.call('SET', P .. ':ended', inc)
    redis.call('DEL', P .. ':inc')
    return record('leave', user, origin, 'c', cause, 'e', inc)
  end
  return record('leave', user, origin, 'c', cause)
end
-- With rooms on, a change that gives an empty room its first user makes the room: only with an incarnation of it the
-- registry holds (inc, see lua-rooms.ts), not one that ended (the registry may not have removed it yet) nor none (''),
-- so that the room's end never removes from the registry a room that started again. With rooms off inc is '-'.
local function admits (inc)
  if inc == '-' or redis.call('EXISTS', P .. ':users') == 1 then return true end
  if inc == '' or redis.call('GET', P .. ':ended') == inc then return false end
  redis.call('SET', P .. ':inc', inc)
  return true
end
-- The unlinked user whose reconnection window ended leaves, but not one whose link is being authenticated, nor one
-- that linked again. Answers 1 when it left, 0 when it did not; either way its deadline is done with but for a claim.
local function expireUser (user, node)
  if redis.call('HEXISTS', P .. ':links', user) == 1 then
    redis.call('ZREM', P .. ':expiry', user)
  elseif redis.call('EXISTS', P .. ':claim:' .. user) == 0 then
    leaveUser(user, node, 'window')
    return 1
  end
  return 0
end
-- One batch of the users whose window ended (or only the user named by only, when it is due). Answers how many left, and
-- 1 when more may be due: the batch was full and made progress, so the caller runs another one at once.
local windowBatch = ${windowBatch}
local function expireDue (node, only)
  if only ~= nil then
    local deadline = tonumber(redis.call('ZSCORE', P .. ':expiry', only))
    if deadline == nil or deadline > now() then return 0, 0 end
    return expireUser(only, node), 0
  end
  local due = redis.call('ZRANGEBYSCORE', P .. ':expiry', '-inf', now(), 'LIMIT', 0, windowBatch)
  local left, progress = 0, 0
  for _, user in ipairs(due) do
    left = left + expireUser(user, node)
    if not redis.call('ZSCORE', P .. ':expiry', user) then progress = progress + 1 end
  end
  return left, (#due == windowBatch and progress > 0) and 1 or 0
end
`
