-- ARGV[3] token, ARGV[4] 1: detach too, ARGV[5] hand-off batch token
-- wrote (0: none; see append.lua): still at the head of the queue, it is
-- taken off. Forgets what token holds in flight (see keep_in_flight).
-- Reply 1 ok, 0 no such session, -1 token does not hold the live lease.
local v = redis.call('HMGET', KEYS[1], 'st', 'lt', 'lu', 'dy', 'ln', 'ft', 'hb', 'hn', 'qb')
if not v[1] then return 0 end
local now = now_ms()
if not live(v[2], v[3], now) or v[2] ~= ARGV[3] then return -1 end
if v[6] == ARGV[3] then redis.call('HDEL', KEYS[1], 'fl', 'ft') end
if v[7] and v[7] == ARGV[5] then
  local n = tonumber(v[8])
  local size = 0
  for _, m in ipairs(redis.call('LRANGE', KEYS[2], 0, n - 1)) do size = size + #m end
  redis.call('LTRIM', KEYS[2], n, -1)
  local qb = tonumber(v[9] or 0) - size
  if qb > 0 then redis.call('HSET', KEYS[1], 'qb', qb) else redis.call('HDEL', KEYS[1], 'qb') end
  redis.call('HDEL', KEYS[1], 'hb', 'hn')
end
if ARGV[4] == '1' then
  redis.call('HDEL', KEYS[1], 'ln', 'lt', 'ls', 'lu')
  unhold(v[5])
  set_deadline(now + tonumber(v[4]), now)
end
return 1
