-- KEYS session hash, subscriptions. ARGV[1] channel.
-- Reply {removed 1/0, receiver node}.
local removed = redis.call('HDEL', KEYS[2], ARGV[1])
local v = redis.call('HMGET', KEYS[1], 'ln', 'lt', 'lu')
local node = ''
if live(v[2], v[3], now_ms()) then node = v[1] or '' end
return {removed, node}
