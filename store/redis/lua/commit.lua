-- ARGV[3] token, ARGV[4] 1: detach too. Forgets what token holds in
-- flight (see keep_in_flight). Reply 1 ok, 0 no such session, -1 token
-- does not hold the live lease.
local v = redis.call('HMGET', KEYS[1], 'st', 'lt', 'lu', 'dy', 'ln', 'ft')
if not v[1] then return 0 end
local now = now_ms()
if not live(v[2], v[3], now) or v[2] ~= ARGV[3] then return -1 end
if v[6] == ARGV[3] then redis.call('HDEL', KEYS[1], 'fl', 'ft') end
if ARGV[4] == '1' then
  redis.call('HDEL', KEYS[1], 'ln', 'lt', 'ls', 'lu')
  unhold(v[5])
  set_deadline(now + tonumber(v[4]), now)
end
return 1
