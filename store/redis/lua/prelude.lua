-- Prelude: prepended to every script (see scripts.go).
--
-- Every session script takes KEYS = {session hash, queue, attributes,
-- deadline index} (one hash tag, so one Cluster slot) and ARGV[1] = session
-- id, ARGV[2] = key TTL margin in ms.
--
-- Session hash fields: st state (1 open, 2 closed), cd close code, rs close
-- reason, in info, qb bytes queued (message lengths summed), dy disconnect
-- delay ms, ln/lt/ls/lu lease node, token, sticky (1/0) and expiry ms, lh
-- the bytes the lease takes by hand-off (append.lua), dl
-- deadline ms (while a lease is held, lease expiry + delay, so a receiver
-- that vanishes still lets the session expire), ai/as the tag id and seq
-- of the last tagged append (append.lua, store.OnceAppender), fl/ft the
-- messages in flight and their taker's token (keep_in_flight), hb/hn/hz
-- the hand-off batch at the head of the queue, its message count and
-- bytes, hq the last batch number (append.lua), kx the time every key
-- of the session expires at (set_deadline).
--
-- Replies use integer codes, mapped to store results in scripts.go:
-- 1 ok, 0 no such session, -1 lease not held, -2 closed, -3 queue full,
-- -4 too many subscriptions, -5 busy (another receiver's live lease).
--
-- Holder index: {p:b}:h:<node> is the set of the bucket's sessions whose
-- hash names node as lease holder (field ln), live or expired. Every
-- script that sets or removes ln keeps it in step, so ReleaseNode finds a
-- dead node's sessions without scanning (see noderelease.go).
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function live(token, until_ms, now)
  return token and token ~= '' and tonumber(until_ms or 0) > now
end
-- set_deadline records when the session may be reaped (field dl and the
-- index) and makes every key outlive it by at least the margin. kx is the
-- hash's field kx as the caller read it: the time the keys expire at. Only
-- a deadline that passes kx - margin extends them, to dl + 2 margins, so a
-- session whose deadline moves on every poll extends its keys about once
-- per margin instead of with 4-5 commands on every call. The index lives
-- as long as its longest session. The field/value pairs given after kx are
-- set in the same HSET. It returns the keys' TTL.
local function set_deadline(dl, now, kx, ...)
  local margin = tonumber(ARGV[2])
  kx = tonumber(kx or 0)
  local extend = dl + margin > kx
  if extend then
    kx = dl + 2 * margin
    redis.call('HSET', KEYS[1], 'kx', kx, 'dl', dl, ...)
  else
    redis.call('HSET', KEYS[1], 'dl', dl, ...)
  end
  redis.call('ZADD', KEYS[4], dl, ARGV[1])
  local ttl = kx - now
  if extend then
    for i = 1, 3 do redis.call('PEXPIRE', KEYS[i], ttl) end
    if redis.call('PTTL', KEYS[4]) < ttl then redis.call('PEXPIRE', KEYS[4], ttl) end
  end
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
-- take_queue takes queued messages, oldest first, up to max bytes (<= 0:
-- all; the oldest always, however big, so a queue always moves), keeping
-- the session's queued byte count (field qb, read by the caller with the
-- rest of the hash) in step. It returns them and 1 when some are left,
-- else 0. A hand-off batch (field hb, read by the caller; see append.lua)
-- at the head of the queue is stale once taken.
local function take_queue(max, qb, hb)
  qb = tonumber(qb or 0)
  if hb then redis.call('HDEL', KEYS[1], 'hb', 'hn', 'hz') end
  if max <= 0 or qb <= max then
    local msgs = redis.call('LRANGE', KEYS[2], 0, -1)
    -- An empty list does not exist: nothing to delete.
    if #msgs > 0 then redis.call('DEL', KEYS[2]) end
    if qb > 0 then redis.call('HDEL', KEYS[1], 'qb') end
    return msgs, 0
  end
  local msgs, size = {}, 0
  while true do
    local m = redis.call('LINDEX', KEYS[2], 0)
    if not m or (#msgs > 0 and size + #m > max) then break end
    redis.call('LPOP', KEYS[2])
    msgs[#msgs + 1] = m
    size = size + #m
  end
  redis.call('HSET', KEYS[1], 'qb', qb - size)
  if redis.call('EXISTS', KEYS[2]) == 1 then return msgs, 1 end
  return msgs, 0
end
-- keep_in_flight keeps msgs, just taken by token with Hold, in flight
-- until token commits (fields fl: the messages, msgpack-encoded, and ft:
-- the token), and returns what token should send: everything in flight,
-- oldest first. What another token left there (it died before its commit)
-- and what token itself took before without committing (the reply of that
-- take was lost: it never got them) both go out again, so a held take is
-- safe to repeat; the receiver commits after each write, before it takes
-- again. ft is the hash's field ft as the caller read it: fl and ft are
-- always set and deleted together, so without ft there is no fl to read.
local function keep_in_flight(token, msgs, ft)
  local fl = ft and redis.call('HGET', KEYS[1], 'fl')
  if fl then
    local all = cmsgpack.unpack(fl)
    for i = 1, #msgs do all[#all + 1] = msgs[i] end
    msgs = all
  end
  if #msgs == 0 then return msgs end
  redis.call('HSET', KEYS[1], 'fl', cmsgpack.pack(msgs), 'ft', token)
  return msgs
end
