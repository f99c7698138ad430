-- Offsets are formatted with %.0f: Lua 5.1's tostring would print large
-- numbers in exponent form; they stay below 2^53, where doubles are exact.
-- KEYS head, log, members. ARGV[1] message, ARGV[2] keep ms, ARGV[3] max
-- length, ARGV[4] channel TTL ms. Reply: the offset, as a string.
local now = now_ms()
local head = redis.call('GET', KEYS[1])
if head then head = tonumber(head) + 1 else head = now * 1000 + 1 end
head = string.format('%.0f', head)
redis.call('SET', KEYS[1], head, 'PX', ARGV[4])
local n = redis.call('RPUSH', KEYS[2], head .. ':' .. string.format('%.0f', now) .. ':' .. ARGV[1])
local maxlen = tonumber(ARGV[3])
if n > maxlen then redis.call('LTRIM', KEYS[2], n - maxlen, -1) end
-- Age: pop from the front while the oldest is past the keep. Bounded per
-- call; every entry is popped once, so it keeps up over appends.
local oldest = now - tonumber(ARGV[2])
for _ = 1, 64 do
  local e = redis.call('LINDEX', KEYS[2], 0)
  local a = string.find(e, ':', 1, true)
  local b = string.find(e, ':', a + 1, true)
  if tonumber(string.sub(e, a + 1, b - 1)) > oldest then break end
  redis.call('LPOP', KEYS[2])
end
redis.call('PEXPIRE', KEYS[2], ARGV[2])
redis.call('PEXPIRE', KEYS[3], ARGV[4])
return head
