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
 * Every key and channel, under the prefix `{namespace}`, is listed once, in docs/scaling-out.md#redis-keys.
 */

/**
 * The version of what nodes publish to each other (here, and in `RedisBackend`), the first line of every
 * publication: a node drops (and says why) what a node of another version published, so that a rolling deploy
 * across a change of it fails loudly instead of delivering what it misreads.
 */
export const wireVersion = 'v1'

/** How many users whose reconnection window ended one script makes leave, at most: a batch keeps Redis responsive. */
export const windowBatch = 1_000

/** The log keeps about this many records: a node that falls further behind reloads the user space. */
export const maxLogLength = 10_000

const prelude = `
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
local function record (op, user, origin, ...)
  local seq = redis.call('INCR', KEYS[1])
  append(P .. ':log', seq, ${maxLogLength}, true, 'op', op, 'u', user, 'o', origin, ...)
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
  return record('leave', user, origin, 'c', cause)
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

/**
 * ARGV: prefix, epoch, node, username, token, acceptNewUsers (1/0), maxUsers, ttl, takeover (1/0). Answers
 * {'ok', isNewUser, isLinked} or {refusal}. With takeover a linked user may be claimed; a claimed one never.
 */
export const claimScript = prelude + `
if not epochIs(ARGV[2]) then return {'epoch'} end
if not isAlive(ARGV[3]) then return {'dead'} end
local user = ARGV[4]
local exists = redis.call('ZSCORE', P .. ':users', user)
if not exists and ARGV[6] == '0' then return {'not-accepting-new-users'} end
local linked = redis.call('HEXISTS', P .. ':links', user)
if (linked == 1 and ARGV[9] == '0') or redis.call('EXISTS', P .. ':claim:' .. user) == 1 then
  return {'already-linked'}
end
if not exists and redis.call('ZCARD', P .. ':users') >= tonumber(ARGV[7]) then return {'full'} end
redis.call('SET', P .. ':claim:' .. user, ARGV[5], 'PX', ARGV[8])
if exists then return {'ok', 0, linked} end
return {'ok', 1, 0}
`

/** ARGV: prefix, username, token, node. A user whose window ended while its link was authenticated leaves now. */
export const releaseScript = prelude + `
if redis.call('GET', P .. ':claim:' .. ARGV[2]) == ARGV[3] then
  redis.call('DEL', P .. ':claim:' .. ARGV[2])
  expireDue(ARGV[4], ARGV[2])
end
return 1
`

/**
 * ARGV: prefix, epoch, node, username, token, acceptNewUsers (1/0), maxUsers, takeover (1/0), data (JSON, or ''
 * for none), replay (1/0), maxAgeMilliseconds, the user's last confirmation this node saw ('<generation>:<number>', '' for none).
 * A linked user (claimed with takeover) is unlinked first, in the same step. Answers {'ok', generation, isNewUser ('1'/'0')} or
 * {refusal}; with replay {'ok', generation, isNewUser ('1'/'0'), head, lost, messages}: the messages it did not confirm.
 */
export const linkScript = prelude + `
if not epochIs(ARGV[2]) then return {'epoch'} end
if not isAlive(ARGV[3]) then return {'dead'} end
local node, user = ARGV[3], ARGV[4]
local claim = P .. ':claim:' .. user
if redis.call('GET', claim) ~= ARGV[5] then return {'unavailable'} end -- the claim expired: its authentication outlived it
redis.call('DEL', claim)
local old = redis.call('HGET', P .. ':links', user)
if old and ARGV[8] == '0' then return {'already-linked'} end
local exists = redis.call('ZSCORE', P .. ':users', user)
if not exists then
  if ARGV[6] == '0' then return {'not-accepting-new-users'} end
  if redis.call('ZCARD', P .. ':users') >= tonumber(ARGV[7]) then return {'full'} end
end
if old then
  local oldNode, oldGeneration = parseLink(old)
  redis.call('HDEL', P .. ':links', user)
  redis.call('SREM', P .. ':node:' .. oldNode, user)
  record('unlink', user, node, 'g', oldGeneration, 'c', 'takeover')
end
local isNew = '0'
if not exists then isNew = '1' end
local seq = redis.call('GET', KEYS[1])
local generation = (tonumber(seq) or 0) + 1
if ARGV[9] == '' then
  record('link', user, node, 'n', node, 'g', generation, 't', ARGV[5], 'new', isNew)
  redis.call('HDEL', P .. ':data', user)
else
  record('link', user, node, 'n', node, 'g', generation, 't', ARGV[5], 'new', isNew, 'd', ARGV[9])
  redis.call('HSET', P .. ':data', user, ARGV[9])
end
if not exists then redis.call('ZADD', P .. ':users', generation, user) end
redis.call('HSET', P .. ':links', user, node .. ' ' .. generation)
redis.call('SADD', P .. ':node:' .. node, user)
redis.call('ZREM', P .. ':expiry', user)
if ARGV[10] == '0' then return {'ok', generation, isNew} end
if ARGV[12] ~= '' then confirm(user, ARGV[12]) end
local confirmed = tonumber(redis.call('HGET', P .. ':mack', user)) or 0
local head = tonumber(redis.call('HGET', P .. ':mhead', user)) or 0
local oldest = now() - tonumber(ARGV[11])
local messages = {}
for _, entry in ipairs(redis.call('XRANGE', P .. ':mail:' .. user, (confirmed + 1) .. '-0', '+')) do
  local fields = entry[2]
  if tonumber(fields[4]) >= oldest then table.insert(messages, fields[2]) end
end
return {'ok', generation, isNew, head, head - confirmed - #messages, messages}
`

/**
 * ARGV: prefix, epoch, origin, target ('' for every user), skip ('' for none), maxMessages, maxAgeMilliseconds,
 * frame. Keeps the frame for its users (numbered per user) and publishes it to the nodes they are linked to,
 * one message a node: the JSON list of username, number pairs, a newline, and the frame.
 */
export const postScript = prelude + `
if not epochIs(ARGV[2]) then return {'epoch'} end
local users
if ARGV[4] ~= '' then
  if not redis.call('ZSCORE', P .. ':users', ARGV[4]) then return {'unknown'} end
  users = {ARGV[4]}
else
  users = redis.call('ZRANGE', P .. ':users', 0, -1)
end
local time = now()
local nodes = {}
for _, user in ipairs(users) do
  if user ~= ARGV[5] then
    local number = redis.call('HINCRBY', P .. ':mhead', user, 1)
    local mail = P .. ':mail:' .. user
    append(mail, number, ARGV[6], false, 'm', ARGV[8], 't', time)
    redis.call('PEXPIRE', mail, ARGV[7])
    local link = redis.call('HGET', P .. ':links', user)
    if link then
      local node = parseLink(link)
      local list = nodes[node]
      if not list then
        list = {}
        nodes[node] = list
      end
      table.insert(list, user)
      table.insert(list, number)
    end
  end
end
for node, list in pairs(nodes) do
  redis.call('PUBLISH', P .. ':to:' .. node, '${wireVersion}\\n' .. cjson.encode(list) .. '\\n' .. ARGV[8])
end
return {'ok'}
`

/** ARGV: prefix, epoch, node, username. The local timer of a reconnection window: the user leaves if its window ended. */
export const expireScript = prelude + `
if not epochIs(ARGV[2]) then return {'epoch'} end
local deadline = redis.call('ZSCORE', P .. ':expiry', ARGV[4])
if not deadline then return {'ok', 0} end
local wait = tonumber(deadline) - now()
if wait > 0 then return {'wait', wait} end
return {'ok', expireDue(ARGV[3], ARGV[4])}
`

/**
 * ARGV: prefix, epoch, node. One more batch of the users whose reconnection window ended, after a heartbeat whose own
 * batch was full (a node with many users died): the node runs these one after another, each a short script, until
 * none is full. Answers {'ok', users that left, 1 when more may be due} or {'epoch'}.
 */
export const windowsScript = prelude + `
if not epochIs(ARGV[2]) then return {'epoch'} end
local left, more = expireDue(ARGV[3], nil)
return {'ok', left, more}
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
 * ARGV: prefix, epoch, origin, username, generation ('' for whatever link the user has), reconnection window
 * (0: none), the user's last confirmation ('<generation>:<number>', '' for none), the cause. Answers {'ok', seq}, {'ok', 0} for a fenced
 * unlink of a link that ended, or {refusal}.
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
if ARGV[7] ~= '' then confirm(user, ARGV[7]) end
if ARGV[5] ~= '' and ARGV[5] ~= generation then return {'ok', 0} end
redis.call('HDEL', P .. ':links', user)
redis.call('SREM', P .. ':node:' .. node, user)
startWindow(user, ARGV[6])
return {'ok', record('unlink', user, ARGV[3], 'g', generation, 'c', ARGV[8])}
`

/** ARGV: prefix, epoch, origin, username, cause. Answers {'ok', seq} or {'unknown'}. */
export const leaveScript = prelude + `
if not epochIs(ARGV[2]) then return {'epoch'} end
local user = ARGV[4]
if not redis.call('ZSCORE', P .. ':users', user) then return {'unknown'} end
return {'ok', leaveUser(user, ARGV[3], ARGV[5])}
`

/**
 * ARGV: prefix, epoch, node, nodeTimeoutMilliseconds, reconnection window, this process' life (the id its
 * registration set: another life of the same node id answers 'replaced'), then username, confirmation
 * (`<generation>:<number>`) pairs: what
 * this node's users confirmed since its last heartbeat. The node's heartbeat, and the sweep of every node
 * silent for longer than the timeout: its users are unlinked, once, by whichever node sweeps first; and the
 * users whose reconnection window ended leave. Answers {'ok', swept users, users that left, nodes alive} or {'epoch'}.
 */
export const heartbeatScript = prelude + `
if not epochIs(ARGV[2]) then return {'epoch'} end
local life = redis.call('GET', P .. ':life:' .. ARGV[3])
if life and life ~= ARGV[6] then return {'replaced'} end
local time = now()
redis.call('ZADD', P .. ':nodes', time, ARGV[3])
for i = 7, #ARGV, 2 do confirm(ARGV[i], ARGV[i + 1]) end
local swept = 0
local dead = redis.call('ZRANGEBYSCORE', P .. ':nodes', '-inf', '(' .. (time - tonumber(ARGV[4])))
for _, node in ipairs(dead) do
  redis.call('ZREM', P .. ':nodes', node)
  swept = swept + sweepNode(node, ARGV[3], ARGV[5])
end
local left, more = expireDue(ARGV[3], nil)
return {'ok', swept, left, redis.call('ZCARD', P .. ':nodes'), more}
`

/**
 * ARGV: prefix, new epoch, node, starting ('1' for the first registration of a process, '0' after Redis lost its
 * data), reconnection window, this process' life (a random id: a previous life still running learns from its
 * heartbeat that it was replaced), then the users linked to this node as username, generation, join order, data ('' for
 * none), the number of the last message sent to it. A node that starts ends, after the snapshot it answers, the links
 * its previous life left under the same id (killed, then started again with a fixed nodeId): it reads their unlinks
 * from the log and emits their events.
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
redis.call('ZADD', P .. ':nodes', now(), ARGV[3])
local seq = tonumber(redis.call('GET', KEYS[1]) or '0')
redis.call('SET', P .. ':life:' .. ARGV[3], ARGV[6])
for i = 7, #ARGV, 5 do
  local user, generation, order = ARGV[i], tonumber(ARGV[i + 1]), tonumber(ARGV[i + 2])
  if generation > seq then seq = generation end
  if order > seq then seq = order end
  if not redis.call('ZSCORE', P .. ':users', user) then redis.call('ZADD', P .. ':users', order, user) end
  if redis.call('HEXISTS', P .. ':links', user) == 0 then
    redis.call('HSET', P .. ':links', user, ARGV[3] .. ' ' .. generation)
    redis.call('SADD', P .. ':node:' .. ARGV[3], user)
    if ARGV[i + 3] ~= '' then redis.call('HSET', P .. ':data', user, ARGV[i + 3]) end
    -- the numbering of its messages goes on from the last one this node sent it; the unconfirmed ones were lost
    redis.call('HSETNX', P .. ':mhead', user, ARGV[i + 4])
    redis.call('HSETNX', P .. ':mack', user, ARGV[i + 4])
  end
end
redis.call('SET', KEYS[1], seq)
if #ARGV >= 7 then
  -- every node reloads the user space when it reads this
  seq = seq + 1
  redis.call('SET', KEYS[1], seq)
  append(P .. ':log', seq, ${maxLogLength}, true, 'op', 'restore')
end
local answer = {epoch, seq, redis.call('ZRANGE', P .. ':users', 0, -1, 'WITHSCORES'), redis.call('HGETALL', P .. ':links'), redis.call('HGETALL', P .. ':data')}
if ARGV[4] == '1' then sweepNode(ARGV[3], ARGV[3], ARGV[5]) end
return answer
`

/**
 * ARGV: prefix. Removes the entries of the log past the sequence number, which only another program adds (an XADD
 * with an automatic id): a node that finds a gap in the log runs it before it reloads. Answers how many it removed.
 */
export const healScript = prelude + `
return heal(P .. ':log', tonumber(redis.call('GET', KEYS[1]) or '0'))
`

/** ARGV: prefix. The user space as it is: {epoch or false, seq, users and their join order, links, data}. */
export const snapshotScript = prelude + `
return {redis.call('GET', P .. ':epoch'), tonumber(redis.call('GET', KEYS[1]) or '0'), redis.call('ZRANGE', P .. ':users', 0, -1, 'WITHSCORES'),
  redis.call('HGETALL', P .. ':links'), redis.call('HGETALL', P .. ':data')}
`

/** ARGV: prefix, node. A node that closes leaves the heartbeat set. */
export const deregisterScript = prelude + `
redis.call('ZREM', P .. ':nodes', ARGV[2])
return 1
`
