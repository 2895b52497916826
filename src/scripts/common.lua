-- Helpers prepended to every script at build time (scripts/embed-lua).
--
-- gk_rate_limit: a GCRA limiter:
-- `limit` requests per interval_ms, bursts of up to `limit` allowed. Stores one number, the
-- theoretical arrival time in integer microseconds, so that a busy key costs one INCRBY; the
-- key's expiry moves only when that time enters a new interval-long cell (once per `limit`
-- requests at full rate), to two cells past it: a key never lives forever, and most requests
-- do not pay for a new expiry. Returns 0 when allowed, else the milliseconds to wait.
local function gk_rate_limit(key, now, limit, interval_ms)
  local now_us, interval_us = now * 1000, interval_ms * 1000
  local emission = math.max(1, math.floor(interval_us / limit))
  local tat = tonumber(redis.call('GET', key))
  local busy = tat ~= nil and tat > now_us
  local new_tat = (busy and tat or now_us) + emission
  if new_tat - interval_us > now_us then
    return math.ceil((new_tat - interval_us - now_us) / 1000)
  end
  local cell = math.floor(new_tat / interval_us)
  local ttl = (cell + 2) * interval_ms - now
  if not tat then
    redis.call('SET', key, string.format('%d', new_tat), 'PX', ttl)
    return 0
  end
  if busy then
    redis.call('INCRBY', key, emission)
  else
    redis.call('SET', key, string.format('%d', new_tat), 'KEEPTTL')
  end
  if cell ~= math.floor(tat / interval_us) then redis.call('PEXPIRE', key, ttl) end
  return 0
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

local function gk_event(stream, stats, max, now, kind, user, ip, details)
  gk_events(stream, stats, max, now, kind, {user}, ip, details)
end
