-- ARGV[3] node, ARGV[4] token, ARGV[5] TTL ms, ARGV[6] sticky.
local v = redis.call('HMGET', KEYS[1], 'st', 'lt', 'lu', 'dy', 'ln', 'kx')
if not v[1] then return 0 end
local now = now_ms()
if not live(v[2], v[3], now) or v[2] ~= ARGV[4] then return -1 end
local lu = now + tonumber(ARGV[5])
hold(ARGV[3], v[5], set_deadline(lu + tonumber(v[4]), now, v[6], 'ln', ARGV[3], 'ls', ARGV[6], 'lu', lu))
return 1
