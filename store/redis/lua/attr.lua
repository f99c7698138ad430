-- ARGV[3] key. Reply {0} no session, {1, value}, {2} no such attribute.
if redis.call('EXISTS', KEYS[1]) == 0 then return {0} end
local v = redis.call('HGET', KEYS[3], ARGV[3])
if not v then return {2} end
return {1, v}
