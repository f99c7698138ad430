package redisstore

import "github.com/redis/go-redis/v9"

// Every session script takes KEYS = {session hash, queue, attributes,
// deadline index} (one hash tag, so one Cluster slot) and ARGV[1] = session
// id, ARGV[2] = key TTL margin in ms.
//
// Session hash fields: st state (1 open, 2 closed), cd close code, rs close
// reason, in info, dy disconnect delay ms, ln/lt/ls/lu lease node, token,
// sticky (1/0) and expiry ms, dl deadline ms (while a lease is held,
// lease expiry + delay, so a receiver that vanishes still lets the session
// expire).
//
// Replies use integers: 1 ok, 0 no such session, -1 lease not held,
// -2 closed, -3 queue full (see outcome in redis.go).
//
// Holder index: {p:b}:h:<node> is the set of the bucket's sessions whose
// hash names node as lease holder (field ln), live or expired. Every
// script that sets or removes ln keeps it in step, so ReleaseNode finds a
// dead node's sessions without scanning (see noderelease.go).
const prelude = `
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function live(token, until_ms, now)
  return token and token ~= '' and tonumber(until_ms or 0) > now
end
-- set_deadline records when the session may be reaped and makes every key
-- outlive it by the margin; the index lives as long as its longest session.
-- It returns that key TTL.
local function set_deadline(dl, now)
  redis.call('HSET', KEYS[1], 'dl', dl)
  redis.call('ZADD', KEYS[4], dl, ARGV[1])
  local ttl = dl - now + tonumber(ARGV[2])
  for i = 1, 3 do redis.call('PEXPIRE', KEYS[i], ttl) end
  if redis.call('PTTL', KEYS[4]) < ttl then redis.call('PEXPIRE', KEYS[4], ttl) end
  return ttl
end
-- holders names the holder index of node in this bucket (same hash tag as
-- KEYS[4], "{p:b}:due", so the same Cluster slot).
local function holders(node)
  return string.sub(KEYS[4], 1, -4) .. 'h:' .. node
end
-- hold moves the session from old's holder index to node's, which must
-- live as long as the session's keys (ttl).
local function hold(node, old, ttl)
  if old and old ~= node then redis.call('SREM', holders(old), ARGV[1]) end
  local k = holders(node)
  redis.call('SADD', k, ARGV[1])
  if redis.call('PTTL', k) < ttl then redis.call('PEXPIRE', k, ttl) end
end
local function unhold(node)
  if node then redis.call('SREM', holders(node), ARGV[1]) end
end
local function take_queue()
  local msgs = redis.call('LRANGE', KEYS[2], 0, -1)
  redis.call('DEL', KEYS[2])
  return msgs
end
`

func newScript(body string) *redis.Script { return redis.NewScript(prelude + body) }

// ARGV[3] delay ms, ARGV[4] info; with a lease, ARGV[5] node, ARGV[6]
// token, ARGV[7] TTL ms, ARGV[8] sticky (as attach).
var createScript = newScript(`
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
local now = now_ms()
-- Leftovers of an earlier session with this id must not leak into this one.
redis.call('DEL', KEYS[2], KEYS[3])
redis.call('HSET', KEYS[1], 'st', 1, 'dy', ARGV[3], 'in', ARGV[4])
if ARGV[6] then
  local lu = now + tonumber(ARGV[7])
  redis.call('HSET', KEYS[1], 'ln', ARGV[5], 'lt', ARGV[6], 'ls', ARGV[8], 'lu', lu)
  hold(ARGV[5], nil, set_deadline(lu + tonumber(ARGV[3]), now))
else
  set_deadline(now + tonumber(ARGV[3]), now)
end
return 1
`)

// Reply {0} or {1, state, code, reason, info, receiver node, sticky}.
var getScript = newScript(`
local v = redis.call('HMGET', KEYS[1], 'st', 'cd', 'rs', 'in', 'ln', 'lt', 'lu', 'ls')
if not v[1] then return {0} end
local node, sticky = '', 0
if live(v[6], v[7], now_ms()) then
  node = v[5] or ''
  if v[8] == '1' then sticky = 1 end
end
return {1, tonumber(v[1]), tonumber(v[2] or 0), v[3] or '', v[4] or '', node, sticky}
`)

// ARGV[3] node, ARGV[4] token, ARGV[5] TTL ms, ARGV[6] sticky.
// Reply {status, ...} with the store.AttachStatus numbers:
// {1, messages}, {2} busy, {3, code, reason} closed, {4} unknown.
var attachScript = newScript(`
local v = redis.call('HMGET', KEYS[1], 'st', 'cd', 'rs', 'lt', 'lu', 'dy', 'ln')
if not v[1] then return {4} end
if v[1] == '2' then return {3, tonumber(v[2] or 0), v[3] or ''} end
local now = now_ms()
if live(v[4], v[5], now) and v[4] ~= ARGV[4] then return {2} end
local lu = now + tonumber(ARGV[5])
redis.call('HSET', KEYS[1], 'ln', ARGV[3], 'lt', ARGV[4], 'ls', ARGV[6], 'lu', lu)
hold(ARGV[3], v[7], set_deadline(lu + tonumber(v[6]), now))
return {1, take_queue()}
`)

// ARGV[3] node, ARGV[4] token, ARGV[5] TTL ms, ARGV[6] sticky.
var renewScript = newScript(`
local v = redis.call('HMGET', KEYS[1], 'st', 'lt', 'lu', 'dy', 'ln')
if not v[1] then return 0 end
local now = now_ms()
if not live(v[2], v[3], now) or v[2] ~= ARGV[4] then return -1 end
local lu = now + tonumber(ARGV[5])
redis.call('HSET', KEYS[1], 'ln', ARGV[3], 'ls', ARGV[6], 'lu', lu)
hold(ARGV[3], v[5], set_deadline(lu + tonumber(v[4]), now))
return 1
`)

// ARGV[3] token.
var detachScript = newScript(`
local v = redis.call('HMGET', KEYS[1], 'st', 'lt', 'lu', 'dy', 'ln')
if not v[1] then return 0 end
local now = now_ms()
if not live(v[2], v[3], now) or v[2] ~= ARGV[3] then return -1 end
redis.call('HDEL', KEYS[1], 'ln', 'lt', 'ls', 'lu')
unhold(v[5])
set_deadline(now + tonumber(v[4]), now)
return 1
`)

// ARGV[3] max (<= 0: no bound), ARGV[4..] messages.
// Reply {1, receiver node, empty when none} or {error code}.
var appendScript = newScript(`
local v = redis.call('HMGET', KEYS[1], 'st', 'ln', 'lt', 'lu')
if not v[1] then return {0} end
if v[1] == '2' then return {-2} end
local n = #ARGV - 3
local max = tonumber(ARGV[3])
if max > 0 and redis.call('LLEN', KEYS[2]) + n > max then return {-3} end
if n > 0 then
  -- unpack in chunks: Lua's stack is small.
  for i = 4, #ARGV, 1000 do
    redis.call('RPUSH', KEYS[2], unpack(ARGV, i, math.min(i + 999, #ARGV)))
  end
  -- The queue lives exactly as long as its session.
  local ttl = redis.call('PTTL', KEYS[1])
  if ttl > 0 then redis.call('PEXPIRE', KEYS[2], ttl) end
end
local node = ''
if live(v[3], v[4], now_ms()) then node = v[2] or '' end
return {1, node}
`)

// ARGV[3] token. Reply {1, state, code, reason, messages} or {error code}.
var drainScript = newScript(`
local v = redis.call('HMGET', KEYS[1], 'st', 'cd', 'rs', 'lt', 'lu')
if not v[1] then return {0} end
if not live(v[4], v[5], now_ms()) or v[4] ~= ARGV[3] then return {-1} end
return {1, tonumber(v[1]), tonumber(v[2] or 0), v[3] or '', take_queue()}
`)

// ARGV[3] code, ARGV[4] reason. Reply 1 won, -2 already closed, 0 missing.
var closeScript = newScript(`
local v = redis.call('HMGET', KEYS[1], 'st', 'lt', 'lu', 'dy')
if not v[1] then return 0 end
if v[1] == '2' then return -2 end
redis.call('HSET', KEYS[1], 'st', 2, 'cd', ARGV[3], 'rs', ARGV[4])
-- With a receiver, its detach (or lease expiry) starts the delay.
local now = now_ms()
if not live(v[2], v[3], now) then set_deadline(now + tonumber(v[4]), now) end
return 1
`)

// Reply 1: reaped an open session (the caller runs OnClose); 2: deleted a
// closed one; 0: already gone; -1: not due.
var reapScript = newScript(`
local v = redis.call('HMGET', KEYS[1], 'st', 'lt', 'lu', 'dl', 'ln')
if not v[1] then
  redis.call('ZREM', KEYS[4], ARGV[1])
  return 0
end
local now, dl = now_ms(), tonumber(v[4] or 0)
if live(v[2], v[3], now) or dl > now then
  redis.call('ZADD', KEYS[4], dl, ARGV[1])
  return -1
end
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3])
redis.call('ZREM', KEYS[4], ARGV[1])
unhold(v[5])
if v[1] == '1' then return 1 end
return 2
`)

// ARGV[3] key, ARGV[4] value.
var setAttrScript = newScript(`
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[3], ARGV[3], ARGV[4])
local ttl = redis.call('PTTL', KEYS[1])
if ttl > 0 then redis.call('PEXPIRE', KEYS[3], ttl) end
return 1
`)

// ARGV[3] key. Reply {0} no session, {1, value}, {2} no such attribute.
var attrScript = newScript(`
if redis.call('EXISTS', KEYS[1]) == 0 then return {0} end
local v = redis.call('HGET', KEYS[3], ARGV[3])
if not v then return {2} end
return {1, v}
`)
