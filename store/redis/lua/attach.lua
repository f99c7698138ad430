-- ARGV[3] node, ARGV[4] token, ARGV[5] TTL ms, ARGV[6] sticky, ARGV[7] max
-- bytes to take (<= 0: all), ARGV[8] node whose live lease may be taken
-- over (TakeOver; empty for Attach): a live lease of that node that is not
-- sticky counts as released. ARGV[9] the bytes the lease takes by
-- hand-off (lh; 0: none; see append.lua). ARGV[10] 1: keep what is taken
-- in flight (store.Hold); last, as outage.go wants.
-- Reply {1, messages, more 1/0} attached, {-5} busy (another live lease),
-- {-2, code, reason, messages, more 1/0, held back 1/0, leased 1/0}
-- closed: unless another token holds a live lease, what was queued before
-- the close (after what a dead taker left in flight) is taken, so the
-- client gets it before the close frame, and with ARGV[10] 1 kept in
-- flight under a lease the taker takes ("leased"); beside one, "held
-- back" says some is queued or in flight.
-- {0} no such session.
local v = redis.call('HMGET', KEYS[1], 'st', 'cd', 'rs', 'lt', 'lu', 'dy', 'ln', 'ls', 'qb', 'hb', 'ft', 'kx')
if not v[1] then return {0} end
local now = now_ms()
-- bars: another live lease keeps this receiver out (a lease of ARGV[8]'s
-- node that is not sticky does not).
local from = ARGV[8] or ''
local bars = live(v[4], v[5], now) and v[4] ~= ARGV[4] and (from == '' or v[7] ~= from or v[8] == '1')
-- take_lease gives the lease to this receiver (lh: the bytes it takes by
-- hand-off).
local function take_lease(lh)
  local lu = now + tonumber(ARGV[5])
  local ttl = set_deadline(lu + tonumber(v[6]), now, v[12], 'ln', ARGV[3], 'lt', ARGV[4], 'ls', ARGV[6], 'lu', lu, 'lh', lh)
  hold(ARGV[3], v[7], ttl)
end
if v[1] == '2' then
  local function closed(msgs, more, held, leased)
    return {-2, tonumber(v[2] or 0), v[3] or '', msgs, more, held, leased}
  end
  if bars then
    -- In flight (ft) counts too: a holder that dies before its write
    -- leaves them to whoever takes its lease over.
    local held = 1
    if not v[11] then held = redis.call('EXISTS', KEYS[2]) end
    return closed({}, 0, held, 0)
  end
  local msgs, more = take_queue(tonumber(ARGV[7]), v[9], v[10])
  if ARGV[10] == '1' then
    -- Held, under a lease of the taker's (leased): it commits them once
    -- written, and dies leaving them in flight, as after an open take.
    msgs = keep_in_flight(ARGV[4], msgs, v[11])
    if #msgs == 0 then return closed(msgs, more, 0, 0) end
    take_lease(0)
    return closed(msgs, more, 0, 1)
  end
  local fl = v[11] and redis.call('HGET', KEYS[1], 'fl')
  if fl then
    local all = cmsgpack.unpack(fl)
    for i = 1, #msgs do all[#all + 1] = msgs[i] end
    msgs = all
    redis.call('HDEL', KEYS[1], 'fl', 'ft')
  end
  return closed(msgs, more, 0, 0)
end
if bars then return {-5} end
take_lease(ARGV[9])
local msgs, more = take_queue(tonumber(ARGV[7]), v[9], v[10])
if ARGV[10] == '1' then msgs = keep_in_flight(ARGV[4], msgs, v[11]) end
return {1, msgs, more}
