-- Offsets are formatted with %.0f: Lua 5.1's tostring would print large
-- numbers in exponent form; they stay below 2^53, where doubles are exact.
-- KEYS head, members. ARGV[1] id, ARGV[2] channel TTL ms.
-- Reply {head as string, 1 if the id was added to the members}.
local head = redis.call('GET', KEYS[1])
if not head then
  head = string.format('%.0f', now_ms() * 1000)
  redis.call('SET', KEYS[1], head)
end
local added = redis.call('SADD', KEYS[2], ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
redis.call('PEXPIRE', KEYS[2], ARGV[2])
return {head, added}
