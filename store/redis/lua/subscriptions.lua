-- KEYS subscriptions. ARGV[1] TTL ms. Reply {{channel, cursor, ...}}.
local all = redis.call('HGETALL', KEYS[1])
if #all > 0 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return {all}
