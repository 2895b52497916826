-- Helpers prepended to every script at build time (scripts/embed-lua).
--
-- gk_rate_limit: a GCRA limiter: `limit` requests per interval_ms, bursts of up to `limit`.
-- Exact at every allowed limit (up to 1,000,000) and interval (up to 86,400 s) with integers
-- only, which Lua's doubles hold exactly below 2^53: the key holds "<ms>:<level>:<refused>", the
-- debt at that time in units where a request costs interval_ms and the debt drains by `limit`
-- units per ms (so the bucket holds limit * interval_ms units, at most 8.64e13), and when the
-- current interval's first refusal was ('' if none), so that callers record one refusal per key
-- and interval. The key lives until the debt is gone and that interval is over. One GET, and one
-- SET when allowed or on an interval's first refusal. Returns 0 when allowed, else the
-- milliseconds to wait and whether this is the interval's first refusal.
local function gk_rate_limit(key, now, limit, interval_ms)
  local level, refused = 0, nil
  local t, l, r = string.match(redis.call('GET', key) or '', '^(%d+):(%d+):(%d*)$')
  if t then
    level = math.max(0, tonumber(l) - math.max(0, now - tonumber(t)) * limit)
    refused = tonumber(r)
    if refused and now - refused >= interval_ms then refused = nil end
  end
  local after, cap = level + interval_ms, limit * interval_ms
  local keep = refused and refused + interval_ms - now or 0
  if after <= cap then
    redis.call('SET', key, string.format('%d:%d:%s', now, after, refused or ''), 'PX',
               math.max(math.ceil(after / limit), keep))
    return 0, false
  end
  if not refused then
    redis.call('SET', key, string.format('%d:%d:%d', now, level, now), 'PX',
               math.max(math.ceil(level / limit), interval_ms))
  end
  return math.ceil((after - cap) / limit), not refused
end

-- gk_now_ms: Redis's own clock in ms, so every node and worker agrees on time. clock_key is
-- nil except in test runs (GK_TEST_CLOCK): then the offset stored there is added, which lets
-- tests move time forward instead of sleeping through TTLs.
local function gk_now_ms(clock_key)
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  if clock_key then now = now + (tonumber(redis.call('GET', clock_key)) or 0) end
  return now
end

-- gk_events: appends the activity events of users (one kind, ip and details for all) to the
-- business's stream (KEYS 'events'), in the same script as the change they record. Many users
-- are packed GK_EVENTS_PER_ENTRY to an entry (field 'users', space-separated: ids never contain a
-- space), which the consumer expands into one row each: one XADD per user made a 10,000-user
-- admission tick spend two thirds of its time appending. The stream is bounded: while PostgreSQL
-- is away it grows, and past `max` entries new events are counted in stats.events_dropped
-- instead of exhausting Redis.
local GK_EVENTS_PER_ENTRY = 100
local function gk_events(stream, stats, max, now, kind, users, ip, details)
  local n = #users
  local room = max - redis.call('XLEN', stream)
  local text = cjson.encode(details)
  local stored = 0
  if n == 1 and room > 0 then
    redis.call('XADD', stream, '*', 'type', kind, 'user', users[1], 'ts', now, 'ip', ip, 'details', text)
    stored = 1
  elseif n > 1 then
    for i = 1, n, GK_EVENTS_PER_ENTRY do
      if room <= 0 then break end
      local last = math.min(i + GK_EVENTS_PER_ENTRY - 1, n)
      redis.call('XADD', stream, '*', 'type', kind, 'users', table.concat(users, ' ', i, last), 'ts', now,
                 'ip', ip, 'details', text)
      room = room - 1
      stored = last
    end
  end
  if stored < n then redis.call('HINCRBY', stats, 'events_dropped', n - stored) end
end

-- gk_departed: records tickets (scores of the waiting set) of users who left it, in the order
-- they left, in the business's departure log: the list `gone`, bounded to the newest
-- GK_GONE_MAX entries, and `seq`, how many were ever recorded. API nodes read it to keep their
-- view of the line (src/qnode.c), so every script that removes from the waiting set calls it.
local GK_GONE_MAX = 262144
local function gk_departed(gone, seq, tickets)
  local n, len = #tickets, 0
  if n == 0 then return end
  for i = 1, n, 1000 do len = redis.call('RPUSH', gone, unpack(tickets, i, math.min(i + 999, n))) end
  redis.call('INCRBY', seq, n)
  if len > GK_GONE_MAX then redis.call('LTRIM', gone, -GK_GONE_MAX, -1) end
end

local function gk_event(stream, stats, max, now, kind, user, ip, details)
  gk_events(stream, stats, max, now, kind, {user}, ip, details)
end

-- gk_rate_check: gk_rate_limit on key for one request of user from ip to endpoint. A refusal is
-- counted in stats.rate_limited_total, and recorded in the activity log only when it is the
-- key's first of the interval: a flood costs one event per client IP and interval, not one per
-- request. Returns 0 when allowed, else the milliseconds to wait.
local function gk_rate_check(key, limit, interval_ms, stream, stats, max, now, endpoint, user, ip)
  local wait, first = gk_rate_limit(key, now, limit, interval_ms)
  if wait == 0 then return 0 end
  redis.call('HINCRBY', stats, 'rate_limited_total', 1)
  if first then
    gk_event(stream, stats, max, now, 'rate_limited', user, ip, {endpoint = endpoint, retry_after_ms = wait})
  end
  return wait
end

-- gk_passthrough_room: may passthrough admit one more user at once? Always without a cap
-- (max_active 0); under one, only while nobody waits (the line goes first, admitted by the
-- worker's ticks) and the live ready users (ready-until after now, O(log n)) number fewer than
-- the cap.
local function gk_passthrough_room(wait, ready, now, max_active)
  if max_active == 0 then return true end
  if redis.call('ZCARD', wait) > 0 then return false end
  return redis.call('ZCOUNT', ready, '(' .. now, '+inf') < max_active
end

-- gk_sched: the business's scheduled event that applies at now, or nil (docs/EVENTS.md). evs is
-- the index gk:{<business>}:evs (event id -> prequeue_opens_at ms); each event has a hash
-- gk:{<business>}:ev:<id> (open, end: ms, end 0 = none; sealed, n, placed once opened;
-- place_next while the draw places it) and a pre-queue set gk:{<business>}:pq:<id>, named from
-- the index's prefix (same business, same slot). The event that applies is the last whose
-- pre-queue has opened (events never overlap); older ones are gone once tick.lua drops them.
-- phase: 'prequeue' before open, 'open' until end, then 'closed' (new joins refused until the
-- next event's pre-queue opens).
local function gk_sched(evs, now)
  local ids = redis.call('ZRANGEBYSCORE', evs, '-inf', now)
  if #ids == 0 then return nil end
  local pre = string.sub(evs, 1, -4)
  local e = {id = ids[#ids], older = ids, prefix = pre}
  e.h, e.pq = pre .. 'ev:' .. e.id, pre .. 'pq:' .. e.id
  local f = redis.call('HMGET', e.h, 'open', 'end', 'sealed', 'n', 'placed')
  e.open, e.stop = tonumber(f[1]), tonumber(f[2]) or 0
  if not e.open then return nil end
  e.sealed, e.n, e.placed = tonumber(f[3]), tonumber(f[4]) or 0, f[5] == '1'
  if now < e.open then
    e.phase = 'prequeue'
  elseif e.stop == 0 or now < e.stop then
    e.phase = 'open'
  else
    e.phase = 'closed'
  end
  return e
end

-- gk_sched_seal: at the first join or tick at or after opening, fixes the pre-queue (N visitors)
-- and reserves the next N tickets of seq for them, so that everyone who joins later gets a
-- ticket behind the block; the worker then fills the block in draw order (sched_place.lua).
local function gk_sched_seal(e, seq)
  if e.phase == 'prequeue' or e.sealed then return end
  e.n = redis.call('SCARD', e.pq)
  e.sealed = redis.call('INCRBY', seq, e.n)
  e.placed = e.n == 0
  redis.call('HSET', e.h, 'sealed', e.sealed, 'n', e.n, 'placed', e.placed and '1' or '0')
end

-- gk_sched_waits: is user in e's pre-queue, still to be placed by the draw?
local function gk_sched_waits(e, user)
  return e ~= nil and not e.placed and redis.call('SISMEMBER', e.pq, user) == 1
end
