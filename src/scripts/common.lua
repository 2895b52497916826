-- Helpers prepended to every script at build time (scripts/embed-lua).
--
-- gk_rate_limit: a GCRA limiter:
-- `limit` requests per interval_ms, bursts of up to `limit` allowed. Stores one number (the
-- theoretical arrival time) with an expiry set in the same command, so a key never lives forever.
-- Returns 0 when allowed, else the milliseconds to wait.
local function gk_rate_limit(key, now, limit, interval_ms)
  local emission = interval_ms / limit
  local tat = tonumber(redis.call('GET', key)) or now
  if tat < now then tat = now end
  local new_tat = tat + emission
  local allow_at = new_tat - interval_ms
  if allow_at > now then
    return math.ceil(allow_at - now)
  end
  redis.call('SET', key, string.format('%.3f', new_tat), 'PX', math.max(1, math.ceil(new_tat - now)))
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
