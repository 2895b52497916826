-- tick: one admission tick of one business. Any number of workers may call it at any time: the
-- tick runs only when due by Redis's clock, and the schedule key makes each tick happen once.
-- Its call is written by tick_cmd (src/store.c), in this order:
-- KEYS: wait, ready, hb, stats, tick (schedule), events, clock, evs (the scheduled events' index,
--       see gk_sched in common.lua), seq, gone, gone_seq (the departure log).
-- ARGV: admission limit (0 = paused), frequency ms, ready ttl ms, max active (0 = no cap),
--       abandon after ms (0 = never), random (0/1), events max, test clock (0/1).
-- Every admission, expiry and eviction is also an activity event; every ticket that leaves the
-- waiting set goes to the departure log (gk_departed).
-- While a scheduled event is open its config overrides (hash fields lim, freq, ttl, maxa) replace
-- the first four; at its opening nobody is admitted until the worker has placed the pre-queue in
-- draw order: until then the answer is {'draw', last ticket of the reserved block, n, event id}.
-- Returns {'wait', ms until due} or
--         {'ticked', admitted, expired, evicted, ms until next, waiting, ready}.
local now = gk_now_ms(ARGV[8] == '1' and KEYS[7] or nil)
local evmax = tonumber(ARGV[7])
local limit, freq, ttl = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local max_active, abandon = tonumber(ARGV[4]), tonumber(ARGV[5])

-- gk_fairness: records the tickets of admitted users (in admission order) in the list
-- gk:{<business>}:fair, the last GK_FAIR_WINDOW of them, for fairness's inversions and Kendall
-- tau; and their waits (now minus the join-time sample at or before each ticket, see enqueue.lua)
-- (of all `admitted`)
-- in the stats fields wait_b1..wait_b10 (up to 1, 5, 10, 30, 60, 300, 900, 1800, 3600, 7200 s),
-- wait_inf, wait_count and wait_sum_ms. At most 64 waits are looked up per tick, evenly spread,
-- each standing for its share of the tick's admissions. Samples below the oldest waiting ticket
-- but the last are dropped.
local GK_FAIR_WINDOW = 256
local GK_WAIT_BOUNDS = {1000, 5000, 10000, 30000, 60000, 300000, 900000, 1800000, 3600000, 7200000}
local function gk_fairness(evs, stats, now, tickets, admitted)
  local pre = string.sub(evs, 1, -4)
  local fair, tt, n = pre .. 'fair', pre .. 'tt', #tickets
  if n == 0 then return end
  local from = math.max(1, n - GK_FAIR_WINDOW + 1)
  redis.call('RPUSH', fair, unpack(tickets, from, n))
  redis.call('LTRIM', fair, -GK_FAIR_WINDOW, -1)
  local samples = math.min(n, 64)
  for s = 1, samples do
    local i = math.floor((s - 1) * n / samples) + 1
    local weight = math.floor(s * admitted / samples) - math.floor((s - 1) * admitted / samples)
    local at = redis.call('ZREVRANGEBYSCORE', tt, tickets[i], '-inf', 'LIMIT', 0, 1)[1]
    if at then
      local wait = math.max(0, now - tonumber(string.match(at, ':(%d+)$')))
      local field = 'wait_inf'
      for b = 1, #GK_WAIT_BOUNDS do
        if wait <= GK_WAIT_BOUNDS[b] then field = 'wait_b' .. b break end
      end
      redis.call('HINCRBY', stats, field, weight)
      redis.call('HINCRBY', stats, 'wait_count', weight)
      redis.call('HINCRBY', stats, 'wait_sum_ms', wait * weight)
    end
  end
end

local ev = gk_sched(KEYS[8], now)
if ev then
  gk_sched_seal(ev, KEYS[9])
  if ev.sealed and not ev.placed then return {'draw', ev.sealed, ev.n, ev.id} end
  -- Earlier events are over and placed: drop what is left of them.
  for i = 1, #ev.older - 1 do
    local old = ev.older[i]
    redis.call('UNLINK', ev.prefix .. 'ev:' .. old, ev.prefix .. 'pq:' .. old)
    redis.call('ZREM', KEYS[8], old)
  end
  if ev.phase == 'open' then
    local o = redis.call('HMGET', ev.h, 'lim', 'freq', 'ttl', 'maxa')
    -- A pause (limit 0) outranks the event's admission limit.
    if limit > 0 then limit = tonumber(o[1]) or limit end
    freq = tonumber(o[2]) or freq
    ttl, max_active = tonumber(o[3]) or ttl, tonumber(o[4]) or max_active
  end
end

local last = tonumber(redis.call('GET', KEYS[5]))
if last and now < last + freq then return {'wait', last + freq - now} end
-- Keep the cadence (tick n at start + n * freq); after an outage longer than a tick, start a new
-- cadence now rather than admitting a burst of missed ticks at once.
local at = now
if last and last + freq > now - freq then at = last + freq end
-- Kept for two hours, longer than the longest admission_frequency (3600 s): a key that lived
-- only a few of the current ticks would expire early when the frequency is raised.
redis.call('SET', KEYS[5], at, 'PX', 7200000)

-- Bounded per tick, like eviction; the rest goes next tick.
local gone_ready = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'WITHSCORES', 'LIMIT', 0, 100000)
local expired = #gone_ready / 2
-- Users admitted by one tick share their ready-until, so their expiries share events entries.
local same = {}
for i = 1, #gone_ready, 2 do
  same[#same + 1] = gone_ready[i]
  if gone_ready[i + 1] ~= gone_ready[i + 3] then
    gk_events(KEYS[6], KEYS[4], evmax, now, 'expire', same, '', {ready_until = tonumber(gone_ready[i + 1])})
    same = {}
  end
end
for i = 1, #gone_ready, 1000 do
  local batch = {}
  for j = i, math.min(i + 999, #gone_ready), 2 do batch[#batch + 1] = gone_ready[j] end
  redis.call('ZREM', KEYS[2], unpack(batch))
end

-- Polls record heartbeats only while abandonment is on, so a set kept through a time with it off
-- would be stale: while off it is dropped, and once on again the waiting users without an entry
-- are enrolled from now (walking the line by ticket, a bounded batch per tick, the cursor in
-- stats.hb_enrolled): everyone gets a full window from when abandonment was turned on.
if abandon == 0 then
  redis.call('UNLINK', KEYS[3])
  redis.call('HDEL', KEYS[4], 'hb_enrolled')
else
  local from = redis.call('HGET', KEYS[4], 'hb_enrolled')
  if from ~= 'done' then
    local batch = redis.call('ZRANGEBYSCORE', KEYS[1], from and '(' .. from or '-inf', '+inf', 'WITHSCORES', 'LIMIT',
                             0, 10000)
    for i = 1, #batch, 1000 do
      local args = {}
      for j = i, math.min(i + 999, #batch), 2 do
        args[#args + 1] = now
        args[#args + 1] = batch[j]
      end
      redis.call('ZADD', KEYS[3], 'NX', unpack(args))
    end
    redis.call('HSET', KEYS[4], 'hb_enrolled', #batch < 20000 and 'done' or batch[#batch])
  end
end

local evicted = 0
local departed = {}
if abandon > 0 then
  -- Bounded per tick; the rest goes next tick.
  local gone = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now - abandon, 'WITHSCORES', 'LIMIT', 0, 100000)
  local users = {}
  for i = 1, #gone, 2 do
    users[#users + 1] = gone[i]
    local ticket = redis.call('ZSCORE', KEYS[1], gone[i])
    if ticket and redis.call('ZREM', KEYS[1], gone[i]) == 1 then
      departed[#departed + 1] = ticket
      evicted = evicted + 1
      gk_event(KEYS[6], KEYS[4], evmax, now, 'evict', gone[i], '', {idle_ms = now - tonumber(gone[i + 1])})
    end
  end
  gone = users
  for i = 1, #gone, 1000 do
    redis.call('ZREM', KEYS[3], unpack(gone, i, math.min(i + 999, #gone)))
  end
end

local waiting_before = redis.call('ZCARD', KEYS[1])
local n = limit
if max_active > 0 then n = math.min(n, max_active - redis.call('ZCARD', KEYS[2])) end
local admitted = 0
if n > 0 and waiting_before > 0 then
  local users = {}
  local tickets = {}
  local picked
  if ARGV[6] == '1' then
    picked = redis.call('ZRANDMEMBER', KEYS[1], n, 'WITHSCORES') -- distinct members, uniformly
  else
    picked = redis.call('ZPOPMIN', KEYS[1], n)
  end
  for i = 1, #picked, 2 do
    users[#users + 1] = picked[i]
    departed[#departed + 1] = picked[i + 1]
    tickets[#tickets + 1] = tonumber(picked[i + 1])
  end
  gk_fairness(KEYS[8], KEYS[4], now, tickets, #users)
  local until_ms = now + ttl
  -- Heartbeats exist only while abandonment is on; skip 10,000 lookups otherwise.
  local hb = abandon > 0
  for i = 1, #users, 500 do
    local batch, args = {}, {}
    for j = i, math.min(i + 499, #users) do
      batch[#batch + 1] = users[j]
      args[#args + 1] = until_ms
      args[#args + 1] = users[j]
    end
    if ARGV[6] == '1' then redis.call('ZREM', KEYS[1], unpack(batch)) end
    redis.call('ZADD', KEYS[2], unpack(args))
    if hb then redis.call('ZREM', KEYS[3], unpack(batch)) end
  end
  admitted = #users
  gk_events(KEYS[6], KEYS[4], evmax, now, 'admit', users, '',
            {method = ARGV[6] == '1' and 'random' or 'fifo', ready_until = until_ms})
end

local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')[2]
if oldest then
  local tt = string.sub(KEYS[8], 1, -4) .. 'tt'
  local keep = redis.call('ZREVRANGEBYSCORE', tt, oldest, '-inf', 'WITHSCORES', 'LIMIT', 0, 1)[2]
  if keep then redis.call('ZREMRANGEBYSCORE', tt, '-inf', '(' .. keep) end
end
gk_departed(KEYS[10], KEYS[11], departed)
redis.call('HINCRBY', KEYS[4], 'ticks_total', 1)
if admitted > 0 then
  redis.call('HINCRBY', KEYS[4], 'admitted_total', admitted)
  redis.call('HSET', KEYS[4], 'last_admission_at', now)
end
if expired > 0 then redis.call('HINCRBY', KEYS[4], 'expired_total', expired) end
if evicted > 0 then redis.call('HINCRBY', KEYS[4], 'evicted_total', evicted) end
-- The measured admission rate (per second) that ETAs use: a moving average over ticks in which
-- someone was waiting, so an empty queue does not read as a stalled one (nor a paused one: limit 0).
if waiting_before > 0 and limit > 0 then
  local sample = admitted * 1000 / freq
  local old = tonumber(redis.call('HGET', KEYS[4], 'admit_rate'))
  local rate = old and (old * 0.7 + sample * 0.3) or sample
  redis.call('HSET', KEYS[4], 'admit_rate', string.format('%.6f', rate))
end
return {'ticked', admitted, expired, evicted, at + freq - now, redis.call('ZCARD', KEYS[1]),
        redis.call('ZCARD', KEYS[2])}
