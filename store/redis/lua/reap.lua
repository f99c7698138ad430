-- Reply 1: reaped an open session (the caller runs OnClose); 2: deleted a
-- closed one; 0: already gone; -1: not due.
local v = redis.call('HMGET', KEYS[1], 'st', 'lt', 'lu', 'dl', 'ln')
if not v[1] then
  redis.call('ZREM', KEYS[4], ARGV[1])
  return 0
end
local now, dl = now_ms(), tonumber(v[4] or 0)
if live(v[2], v[3], now) or dl > now then
  redis.call('ZADD', KEYS[4], dl, ARGV[1])
  return -1
end
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3])
redis.call('ZREM', KEYS[4], ARGV[1])
unhold(v[5])
if v[1] == '1' then return 1 end
return 2
