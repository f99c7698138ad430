-- releaseScript releases node's lease on one session (a session script:
-- KEYS and ARGV[1..2] as the others). ARGV[3] node, ARGV[4] close code,
-- ARGV[5] close reason. Reply 1: released a sticky lease and closed the
-- open session (the caller runs OnClose); 2: released a live lease;
-- 0: nothing live held by node (gone, moved on, or expired).
local v = redis.call('HMGET', KEYS[1], 'st', 'ln', 'lt', 'lu', 'ls', 'dy', 'kx')
redis.call('SREM', holders(ARGV[3]), ARGV[1])
if not v[1] or v[2] ~= ARGV[3] then return 0 end
redis.call('HDEL', KEYS[1], 'ln', 'lt', 'ls', 'lu')
local now = now_ms()
-- An expired lease: its deadline has been running since it expired.
if not live(v[3], v[4], now) then return 0 end
local reply = 2
if v[5] == '1' and v[1] == '1' then
  redis.call('HSET', KEYS[1], 'st', 2, 'cd', ARGV[4], 'rs', ARGV[5])
  reply = 1
end
set_deadline(now + tonumber(v[6]), now, v[7])
return reply
