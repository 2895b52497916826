-- tick: one admission tick of one business. Any number of workers may call it at any time: the
-- tick runs only when due by Redis's clock, and the schedule key makes each tick happen once.
-- Its call is written by tick_cmd (src/store.c), in this order:
-- KEYS: wait, ready, hb, stats, tick (schedule), events, clock, gone, gone_seq (the departure log).
-- ARGV: admission limit, frequency ms, ready ttl ms, max active (0 = no cap),
--       abandon after ms (0 = never), random (0/1), events max, test clock (0/1).
-- Every admission, expiry and eviction is also an activity event; every ticket that leaves the
-- waiting set goes to the departure log (gk_departed).
-- Returns {'wait', ms until due} or
--         {'ticked', admitted, expired, evicted, ms until next, waiting, ready}.
local now = gk_now_ms(ARGV[8] == '1' and KEYS[7] or nil)
local evmax = tonumber(ARGV[7])
local limit, freq, ttl = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local max_active, abandon = tonumber(ARGV[4]), tonumber(ARGV[5])

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
  local picked
  if ARGV[6] == '1' then
    picked = redis.call('ZRANDMEMBER', KEYS[1], n, 'WITHSCORES') -- distinct members, uniformly
  else
    picked = redis.call('ZPOPMIN', KEYS[1], n)
  end
  for i = 1, #picked, 2 do
    users[#users + 1] = picked[i]
    departed[#departed + 1] = picked[i + 1]
  end
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

gk_departed(KEYS[8], KEYS[9], departed)
redis.call('HINCRBY', KEYS[4], 'ticks_total', 1)
if admitted > 0 then
  redis.call('HINCRBY', KEYS[4], 'admitted_total', admitted)
  redis.call('HSET', KEYS[4], 'last_admission_at', now)
end
if expired > 0 then redis.call('HINCRBY', KEYS[4], 'expired_total', expired) end
if evicted > 0 then redis.call('HINCRBY', KEYS[4], 'evicted_total', evicted) end
-- The measured admission rate (per second) that ETAs use: a moving average over ticks in which
-- someone was waiting, so an empty queue does not read as a stalled one.
if waiting_before > 0 then
  local sample = admitted * 1000 / freq
  local old = tonumber(redis.call('HGET', KEYS[4], 'admit_rate'))
  local rate = old and (old * 0.7 + sample * 0.3) or sample
  redis.call('HSET', KEYS[4], 'admit_rate', string.format('%.6f', rate))
end
return {'ticked', admitted, expired, evicted, at + freq - now, redis.call('ZCARD', KEYS[1]),
        redis.call('ZCARD', KEYS[2])}
