-- ARGV[3] max messages, ARGV[4] max bytes (<= 0: no bound), ARGV[5] tag
-- id ('' for none), ARGV[6] tag seq, ARGV[7..] messages. Reply {1,
-- receiver node, empty when none} or {error code}; {1, node, token, batch}
-- when the messages were handed off: the live lease takes hand-offs of
-- their size (lh) and nothing was queued or in flight, so they head the
-- queue as batch (fields hb, hn, hz: its number, messages and bytes; hq
-- the last number), which the holder may write without a drain and then
-- commit (commit.lua). A tagged append whose tag repeats
-- the last one's id with a seq at or below its seq appends nothing
-- (store.OnceAppender); fields ai, as keep that tag.
local v = redis.call('HMGET', KEYS[1], 'st', 'ln', 'lt', 'lu', 'qb', 'lh', 'ai', 'as', 'ft', 'kx', 'hq')
if not v[1] then return {0} end
if v[1] == '2' then return {-2} end
local now = now_ms()
local tag, seq = ARGV[5], tonumber(ARGV[6])
if tag ~= '' and v[7] == tag and tonumber(v[8]) >= seq then
  if live(v[3], v[4], now) then return {1, v[2] or ''} end
  return {1, ''}
end
local n = #ARGV - 6
local max, maxb = tonumber(ARGV[3]), tonumber(ARGV[4])
local queued = redis.call('LLEN', KEYS[2])
if max > 0 and queued + n > max then return {-3} end
local size, qb = 0, tonumber(v[5] or 0)
for i = 7, #ARGV do size = size + #ARGV[i] end
if maxb > 0 and qb + size > maxb then return {-3} end
-- Fields to set, in one HSET at the end.
local set = {}
if n > 0 then
  -- unpack in chunks: Lua's stack is small.
  for i = 7, #ARGV, 1000 do
    redis.call('RPUSH', KEYS[2], unpack(ARGV, i, math.min(i + 999, #ARGV)))
  end
  set[#set + 1], set[#set + 2] = 'qb', qb + size
  -- The queue lives exactly as long as its session: set_deadline made
  -- the hash expire at kx (a hash written before kx existed: its PTTL).
  local ttl
  if v[10] then ttl = tonumber(v[10]) - now else ttl = redis.call('PTTL', KEYS[1]) end
  if ttl > 0 then redis.call('PEXPIRE', KEYS[2], ttl) end
end
if tag ~= '' then
  set[#set + 1], set[#set + 2], set[#set + 3], set[#set + 4] = 'ai', tag, 'as', seq
end
local reply = {1, ''}
if live(v[3], v[4], now) then
  reply = {1, v[2] or ''}
  local lh = tonumber(v[6] or 0)
  -- No ft: nothing in flight (fl and ft go together).
  if n > 0 and queued == 0 and lh > 0 and size <= lh and not v[9] then
    local batch = tonumber(v[11] or 0) + 1
    for _, f in ipairs({'hq', batch, 'hb', batch, 'hn', n, 'hz', size}) do set[#set + 1] = f end
    reply = {1, v[2] or '', v[3], batch}
  end
end
if #set > 0 then redis.call('HSET', KEYS[1], unpack(set)) end
return reply
