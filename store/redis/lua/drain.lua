-- ARGV[3] token. Reply {1, state, code, reason, messages} or {error code}.
local v = redis.call('HMGET', KEYS[1], 'st', 'cd', 'rs', 'lt', 'lu')
if not v[1] then return {0} end
if not live(v[4], v[5], now_ms()) or v[4] ~= ARGV[3] then return {-1} end
return {1, tonumber(v[1]), tonumber(v[2] or 0), v[3] or '', take_queue()}
