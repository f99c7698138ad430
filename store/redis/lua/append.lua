-- ARGV[3] max messages, ARGV[4] max bytes (<= 0: no bound), ARGV[5] tag
-- id ('' for none), ARGV[6] tag seq, ARGV[7..] messages. Reply {1,
-- receiver node, empty when none} or {error code}; {1, node, token, batch}
-- when the messages were handed off: the live lease takes hand-offs of
-- their size (lh) and nothing was queued or in flight, so they head the
-- queue as batch (fields hb, hn), which the holder may write without a
-- drain and then commit (commit.lua). A tagged append whose tag repeats
-- the last one's id with a seq at or below its seq appends nothing
-- (store.OnceAppender); fields ai, as keep that tag.
local v = redis.call('HMGET', KEYS[1], 'st', 'ln', 'lt', 'lu', 'qb', 'lh', 'ai', 'as')
if not v[1] then return {0} end
if v[1] == '2' then return {-2} end
local tag, seq = ARGV[5], tonumber(ARGV[6])
if tag ~= '' and v[7] == tag and tonumber(v[8]) >= seq then
  if live(v[3], v[4], now_ms()) then return {1, v[2] or ''} end
  return {1, ''}
end
local n = #ARGV - 6
local max, maxb = tonumber(ARGV[3]), tonumber(ARGV[4])
local queued = redis.call('LLEN', KEYS[2])
if max > 0 and queued + n > max then return {-3} end
local size, qb = 0, tonumber(v[5] or 0)
for i = 7, #ARGV do size = size + #ARGV[i] end
if maxb > 0 and qb + size > maxb then return {-3} end
if n > 0 then
  -- unpack in chunks: Lua's stack is small.
  for i = 7, #ARGV, 1000 do
    redis.call('RPUSH', KEYS[2], unpack(ARGV, i, math.min(i + 999, #ARGV)))
  end
  redis.call('HSET', KEYS[1], 'qb', qb + size)
  -- The queue lives exactly as long as its session.
  local ttl = redis.call('PTTL', KEYS[1])
  if ttl > 0 then redis.call('PEXPIRE', KEYS[2], ttl) end
end
if tag ~= '' then redis.call('HSET', KEYS[1], 'ai', tag, 'as', seq) end
if not live(v[3], v[4], now_ms()) then return {1, ''} end
local lh = tonumber(v[6] or 0)
if n > 0 and queued == 0 and lh > 0 and size <= lh and redis.call('HEXISTS', KEYS[1], 'fl') == 0 then
  local batch = redis.call('HINCRBY', KEYS[1], 'hq', 1)
  redis.call('HSET', KEYS[1], 'hb', batch, 'hn', n)
  return {1, v[2] or '', v[3], batch}
end
return {1, v[2] or ''}
