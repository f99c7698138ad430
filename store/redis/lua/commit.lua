-- ARGV[3] token, ARGV[4] 1: detach too, ARGV[5] hand-off batch token
-- wrote (0: none; see append.lua): still at the head of the queue, it is
-- taken off. Forgets what token holds in flight (see keep_in_flight).
-- Reply 1 ok, 0 no such session, -1 token does not hold the live lease.
local v = redis.call('HMGET', KEYS[1], 'st', 'lt', 'lu', 'dy', 'ln', 'ft', 'hb', 'hn', 'qb', 'hz', 'kx')
if not v[1] then return 0 end
local now = now_ms()
if not live(v[2], v[3], now) or v[2] ~= ARGV[3] then return -1 end
-- Fields to delete, in one HDEL; qb is the queued bytes to set, if any.
local del, qb = {}, nil
if v[6] == ARGV[3] then del[#del + 1], del[#del + 2] = 'fl', 'ft' end
if v[7] and v[7] == ARGV[5] then
  local n = tonumber(v[8])
  local size = tonumber(v[10])
  if not size then
    -- A batch an append without hz handed off: count its bytes.
    size = 0
    for _, m in ipairs(redis.call('LRANGE', KEYS[2], 0, n - 1)) do size = size + #m end
  end
  redis.call('LTRIM', KEYS[2], n, -1)
  qb = tonumber(v[9] or 0) - size
  if qb <= 0 then qb = nil; del[#del + 1] = 'qb' end
  del[#del + 1], del[#del + 2], del[#del + 3] = 'hb', 'hn', 'hz'
end
if ARGV[4] == '1' then
  for _, f in ipairs({'ln', 'lt', 'ls', 'lu'}) do del[#del + 1] = f end
end
if #del > 0 then redis.call('HDEL', KEYS[1], unpack(del)) end
if ARGV[4] == '1' then
  unhold(v[5])
  if qb then set_deadline(now + tonumber(v[4]), now, v[11], 'qb', qb) else set_deadline(now + tonumber(v[4]), now, v[11]) end
elseif qb then
  redis.call('HSET', KEYS[1], 'qb', qb)
end
return 1
