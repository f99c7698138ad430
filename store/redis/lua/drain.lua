-- ARGV[3] token, ARGV[4] max bytes (<= 0: all), ARGV[5] 1: keep what is
-- taken in flight (store.Hold).
-- Reply {1, state, code, reason, messages, more 1/0} or {error code}.
local v = redis.call('HMGET', KEYS[1], 'st', 'cd', 'rs', 'lt', 'lu', 'qb', 'hb', 'ft')
if not v[1] then return {0} end
if not live(v[4], v[5], now_ms()) or v[4] ~= ARGV[3] then return {-1} end
local msgs, more = take_queue(tonumber(ARGV[4]), v[6], v[7])
if ARGV[5] == '1' then msgs = keep_in_flight(ARGV[3], msgs, v[8]) end
return {1, tonumber(v[1]), tonumber(v[2] or 0), v[3] or '', msgs, more}
