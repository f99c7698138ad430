-- ARGV[3] code, ARGV[4] reason. Reply 1 won, -2 already closed, 0 missing.
local v = redis.call('HMGET', KEYS[1], 'st', 'lt', 'lu', 'dy', 'kx')
if not v[1] then return 0 end
if v[1] == '2' then return -2 end
redis.call('HSET', KEYS[1], 'st', 2, 'cd', ARGV[3], 'rs', ARGV[4])
-- With a receiver, its detach (or lease expiry) starts the delay.
local now = now_ms()
if not live(v[2], v[3], now) then set_deadline(now + tonumber(v[4]), now, v[5]) end
return 1
