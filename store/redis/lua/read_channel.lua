-- Offsets are formatted with %.0f: Lua 5.1's tostring would print large
-- numbers in exponent form; they stay below 2^53, where doubles are exact.
-- KEYS head, log. ARGV[1] after, ARGV[2] max.
-- Reply {empty string} when there is no log, else {head, truncated 1/0,
-- entries}.
local h = redis.call('GET', KEYS[1])
if not h then return {''} end
local head, after = tonumber(h), tonumber(ARGV[1])
if after >= head then
  if after > head then return {h, 1, {}} end
  return {h, 0, {}}
end
local n = redis.call('LLEN', KEYS[2])
local first = head - n + 1
local start, trunc = 0, 0
if after + 1 < first then trunc = 1 else start = after + 1 - first end
return {h, trunc, redis.call('LRANGE', KEYS[2], start, start + tonumber(ARGV[2]) - 1)}
