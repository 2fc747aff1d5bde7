import { prelude } from './lua-prelude.js'
import { luaNumberedDelivery } from './wire.js'

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
-- the claims of the room by token, which a release that may end an empty room counts (it lives as long as a claim)
redis.call('SADD', P .. ':claims', ARGV[5])
redis.call('PEXPIRE', P .. ':claims', ARGV[8])
if exists then return {'ok', 0, linked} end
return {'ok', 1, 0}
`

/**
 * ARGV: prefix, username, token, node, the room's incarnation the claim was admitted with ('' for none). Frees the
 * claim (a user whose window ended while its link was authenticated leaves now). With an incarnation: when the room
 * has no user and no other claim, that incarnation ends (a link made with it is refused as 'stale'), and it answers
 * 1, for the node to remove it from the registry; else 0.
 */
export const releaseScript = prelude + `
if redis.call('GET', P .. ':claim:' .. ARGV[2]) == ARGV[3] then
  redis.call('DEL', P .. ':claim:' .. ARGV[2])
  expireDue(ARGV[4], ARGV[2])
end
redis.call('SREM', P .. ':claims', ARGV[3])
if ARGV[5] ~= '' and redis.call('EXISTS', P .. ':users') == 0 and redis.call('SCARD', P .. ':claims') == 0 then
  redis.call('SET', P .. ':ended', ARGV[5])
  return 1
end
return 0
`

/**
 * ARGV: prefix, epoch, node, username, token, acceptNewUsers (1/0), maxUsers, takeover (1/0), data (JSON, or ''
 * for none), replay (1/0), maxAgeMilliseconds, the user's last confirmation this node saw ('<generation>:<number>', '' for none),
 * the room's incarnation (see `admits`; answers {'stale'}, the claim kept, when it does not admit the link).
 * A linked user (claimed with takeover) is unlinked first, in the same step. Answers {'ok', generation, isNewUser ('1'/'0')} or
 * {refusal}; with replay {'ok', generation, isNewUser ('1'/'0'), head, lost, messages}: the messages it did not confirm.
 */
export const linkScript = prelude + `
if not epochIs(ARGV[2]) then return {'epoch'} end
if not isAlive(ARGV[3]) then return {'dead'} end
local node, user = ARGV[3], ARGV[4]
local claim = P .. ':claim:' .. user
if redis.call('GET', claim) ~= ARGV[5] then return {'unavailable'} end -- the claim expired: its authentication outlived it
if not admits(ARGV[13]) then return {'stale'} end
redis.call('DEL', claim)
redis.call('SREM', P .. ':claims', ARGV[5])
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
  redis.call('PUBLISH', P .. ':to:' .. node, ${luaNumberedDelivery('list', 'ARGV[8]')})
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

/** ARGV: prefix, epoch, origin, username, maxUsers, the room's incarnation (see `admits`). Answers {'ok', seq} or {refusal}. */
export const joinScript = prelude + `
if not epochIs(ARGV[2]) then return {'epoch'} end
local user = ARGV[4]
if redis.call('ZSCORE', P .. ':users', user) then return {'exists'} end
if redis.call('ZCARD', P .. ':users') >= tonumber(ARGV[5]) then return {'full'} end
if not admits(ARGV[6]) then return {'stale'} end
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
