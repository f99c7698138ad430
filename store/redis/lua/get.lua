-- Reply {0} or {1, state, code, reason, info, receiver node, sticky}.
local v = redis.call('HMGET', KEYS[1], 'st', 'cd', 'rs', 'in', 'ln', 'lt', 'lu', 'ls')
if not v[1] then return {0} end
local node, sticky = '', 0
if live(v[6], v[7], now_ms()) then
  node = v[5] or ''
  if v[8] == '1' then sticky = 1 end
end
return {1, tonumber(v[1]), tonumber(v[2] or 0), v[3] or '', v[4] or '', node, sticky}
