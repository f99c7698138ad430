-- ARGV[3] delay ms, ARGV[4] info; with a lease, ARGV[5] node, ARGV[6]
-- token, ARGV[7] TTL ms, ARGV[8] sticky (as attach).
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
local now = now_ms()
-- Leftovers of an earlier session with this id must not leak into this one.
redis.call('DEL', KEYS[2], KEYS[3])
if ARGV[6] then
  local lu = now + tonumber(ARGV[7])
  hold(ARGV[5], nil, set_deadline(lu + tonumber(ARGV[3]), now, nil, 'st', 1, 'dy', ARGV[3], 'in', ARGV[4],
    'ln', ARGV[5], 'lt', ARGV[6], 'ls', ARGV[8], 'lu', lu))
else
  set_deadline(now + tonumber(ARGV[3]), now, nil, 'st', 1, 'dy', ARGV[3], 'in', ARGV[4])
end
return 1
