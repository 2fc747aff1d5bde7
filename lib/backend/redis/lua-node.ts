import { prelude } from './lua-prelude.js'

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
  appendRecord(seq, {'op', 'restore'})
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

/**
 * ARGV: prefix, node. A node that closes, or stops serving the room, leaves its heartbeat set. Answers the next deadline
 * of a reconnection window in it (0: none), for the rooms no node serves (see lua-rooms.ts).
 */
export const deregisterScript = prelude + `
redis.call('ZREM', P .. ':nodes', ARGV[2])
local next = redis.call('ZRANGE', P .. ':expiry', 0, 0, 'WITHSCORES')
return tonumber(next[2]) or 0
`
