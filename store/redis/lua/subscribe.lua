-- KEYS session hash, subscriptions. ARGV[1] channel, ARGV[2] head,
-- ARGV[3] max (<= 0: no bound), ARGV[4] TTL ms.
-- Reply {1, cursor, receiver node, created 1/0}, {0} no session,
-- {-2} closed, {-4} too many subscriptions.
local v = redis.call('HMGET', KEYS[1], 'st', 'ln', 'lt', 'lu')
if not v[1] then return {0} end
if v[1] == '2' then return {-2} end
local node = ''
if live(v[3], v[4], now_ms()) then node = v[2] or '' end
local cur = redis.call('HGET', KEYS[2], ARGV[1])
if cur then return {1, cur, node, 0} end
local max = tonumber(ARGV[3])
if max > 0 and redis.call('HLEN', KEYS[2]) >= max then return {-4} end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
redis.call('PEXPIRE', KEYS[2], ARGV[4])
return {1, ARGV[2], node, 1}
