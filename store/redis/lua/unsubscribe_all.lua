-- KEYS subscriptions. Reply: the channels, now removed.
local chs = redis.call('HKEYS', KEYS[1])
redis.call('DEL', KEYS[1])
return {chs}
