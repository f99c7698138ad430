-- ARGV[3] token.
local v = redis.call('HMGET', KEYS[1], 'st', 'lt', 'lu', 'dy', 'ln', 'kx')
if not v[1] then return 0 end
local now = now_ms()
if not live(v[2], v[3], now) or v[2] ~= ARGV[3] then return -1 end
redis.call('HDEL', KEYS[1], 'ln', 'lt', 'ls', 'lu')
unhold(v[5])
set_deadline(now + tonumber(v[4]), now, v[6])
return 1
