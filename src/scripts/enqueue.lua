-- enqueue: each user joins the queue once. One call serves one join, or the joins of one
-- business that reach the pipeline together, so a burst pays Redis's per-script cost once; users
-- are answered in order (a user named twice is answered as already waiting the second time).
-- Its call is written by enqueue_cmd (src/pipeline_queue.c), in this order:
-- KEYS: seq, wait, ready, hb, stats, events, clock, then one rate-limit key per user.
-- ARGV: rate limit, rate interval ms, max queue length (0 = none), passthrough (0/1), ready ttl
--       ms, heartbeat (0/1), events max, max active users (0 = none), test clock (0/1), then user
--       and client ip for each user.
-- Returns one answer per user: {'limited', retry_ms}, {'ready', until_ms}, {'waiting', rank},
-- {'full'}, {'admitted', until_ms} or {'new', rank}; 'waiting' and 'new' add the measured
-- admissions per second ('' if none yet), how many users wait in all and the user's ticket.
local now = gk_now_ms(ARGV[9] == '1' and KEYS[7] or nil)
local limit, interval, max = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local passthrough, ttl, heartbeat, evmax = ARGV[4] == '1', tonumber(ARGV[5]), ARGV[6] == '1', tonumber(ARGV[7])
local max_active = tonumber(ARGV[8])
local rate = redis.call('HGET', KEYS[5], 'admit_rate') or ''
local waiting = redis.call('ZCARD', KEYS[2])
local out = {}
for i = 1, (#ARGV - 9) / 2 do
  local user, ip = ARGV[8 + 2 * i], ARGV[9 + 2 * i]
  local wait = gk_rate_check(KEYS[7 + i], limit, interval, KEYS[6], KEYS[5], evmax, now, 'enqueue', user, ip)
  local ready_until = tonumber(redis.call('ZSCORE', KEYS[3], user))
  if wait > 0 then
    out[i] = {'limited', wait}
  elseif ready_until and ready_until > now then
    out[i] = {'ready', ready_until}
  else
    if ready_until then
      redis.call('ZREM', KEYS[3], user) -- expired: joins again at the back
      redis.call('HINCRBY', KEYS[5], 'expired_total', 1)
      gk_event(KEYS[6], KEYS[5], evmax, now, 'expire', user, '', {ready_until = ready_until})
    end
    local rank = redis.call('ZRANK', KEYS[2], user)
    if rank then
      out[i] = {'waiting', rank + 1, rate, waiting, tonumber(redis.call('ZSCORE', KEYS[2], user))}
    elseif max > 0 and waiting >= max then
      out[i] = {'full'}
    elseif passthrough and gk_passthrough_room(KEYS[2], KEYS[3], now, max_active) then
      local until_ms = now + ttl
      redis.call('HINCRBY', KEYS[5], 'enqueued_total', 1)
      redis.call('ZADD', KEYS[3], until_ms, user)
      redis.call('HINCRBY', KEYS[5], 'admitted_total', 1)
      redis.call('HSET', KEYS[5], 'last_admission_at', now)
      gk_event(KEYS[6], KEYS[5], evmax, now, 'enqueue', user, ip, {passthrough = true})
      gk_event(KEYS[6], KEYS[5], evmax, now, 'admit', user, ip, {method = 'passthrough', ready_until = until_ms})
      out[i] = {'admitted', until_ms}
    else
      -- The score is a ticket from one counter, never a clock: first come, first served, and
      -- the newest ticket is the highest, so the new user's place is the queue's length.
      local ticket = redis.call('INCR', KEYS[1])
      redis.call('HINCRBY', KEYS[5], 'enqueued_total', 1)
      redis.call('ZADD', KEYS[2], ticket, user)
      if heartbeat then redis.call('ZADD', KEYS[4], now, user) end
      waiting = waiting + 1
      gk_event(KEYS[6], KEYS[5], evmax, now, 'enqueue', user, ip, {position = waiting, ticket = ticket})
      out[i] = {'new', waiting, rate, waiting, ticket}
    end
  end
end
return out
