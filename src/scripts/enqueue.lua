-- enqueue: each user joins the queue once. One call serves one join, or the joins of one
-- business that reach the pipeline together, so a burst pays Redis's per-script cost once; users
-- are answered in order (a user named twice is answered as already waiting the second time).
-- Its call is written by enqueue_cmd (src/pipeline_queue.c), in this order:
-- KEYS: seq, wait, ready, hb, stats, events, clock, then one rate-limit key per user, then one
--       proof-of-work key per user (gk:{b}:pow:<challenge>), then evs (the scheduled events'
--       index, see gk_sched in common.lua).
-- ARGV: rate limit, rate interval ms, max queue length (0 = none), passthrough (0/1), ready ttl
--       ms, heartbeat (0/1), events max, max active users (0 = none), test clock (0/1), then user
--       and client ip for each user, then for each user how long to remember its proof of work as
--       spent, in ms (0 = the join carries none).
-- A proof is spent once (SET NX) by a join that is not over its rate limit; a second join with it
-- is answered {'pow_reused'} and does nothing else.
-- Returns one answer per user: {'limited', retry_ms}, {'pow_reused'}, {'ready', until_ms},
-- {'waiting', rank}, {'full'}, {'admitted', until_ms} or {'new', rank}; 'waiting' and 'new' add
-- the measured admissions per second ('' if none yet), how many users wait in all and the user's
-- ticket.
-- While a scheduled event's pre-queue is open (or its draw is still to place them), a user who is
-- neither waiting nor ready is in the pre-queue: {'prequeue', opens_at ms, 1 if joined now else
-- 0, now ms}, or {'full'} past max queue length or 1,000,000 (GK_SCHED_PARTICIPANTS_MAX); from
-- the event's end new joins get {'closed'}.
local now = gk_now_ms(ARGV[9] == '1' and KEYS[7] or nil)
local limit, interval, max = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local passthrough, ttl, heartbeat, evmax = ARGV[4] == '1', tonumber(ARGV[5]), ARGV[6] == '1', tonumber(ARGV[7])
local max_active = tonumber(ARGV[8])
local rate = redis.call('HGET', KEYS[5], 'admit_rate') or ''
local waiting = redis.call('ZCARD', KEYS[2])
local ev = gk_sched(KEYS[#KEYS], now)
if ev then gk_sched_seal(ev, KEYS[1]) end
-- Tickets reserved for a pre-queue the worker has not placed yet stand ahead of a new user.
local held = (ev and not ev.placed) and ev.n or 0
-- Join times, sampled (a ticket and its time, every 16th ticket or once a second), for the waits
-- tick.lua measures; the sample set gk:{<business>}:tt lives beside evs.
local tt, tt_at = string.sub(KEYS[#KEYS], 1, -4) .. 'tt', tonumber(redis.call('HGET', KEYS[5], 'tt_at')) or 0
local out = {}
local n = (#ARGV - 9) / 3
for i = 1, n do
  local user, ip, pow_ttl = ARGV[8 + 2 * i], ARGV[9 + 2 * i], tonumber(ARGV[9 + 2 * n + i])
  local wait = gk_rate_check(KEYS[7 + i], limit, interval, KEYS[6], KEYS[5], evmax, now, 'enqueue', user, ip)
  local ready_until = tonumber(redis.call('ZSCORE', KEYS[3], user))
  if wait > 0 then
    out[i] = {'limited', wait}
  elseif pow_ttl > 0 and not redis.call('SET', KEYS[7 + n + i], '1', 'NX', 'PX', pow_ttl) then
    out[i] = {'pow_reused'}
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
      local ticket = tonumber(redis.call('ZSCORE', KEYS[2], user))
      -- Behind a pre-queue block still to place: the block is ahead too.
      local ahead = (held > 0 and ev.sealed and ticket > ev.sealed) and held or 0
      out[i] = {'waiting', rank + 1 + ahead, rate, waiting + held, ticket}
    elseif ev and ev.phase == 'prequeue' then
      if redis.call('SISMEMBER', ev.pq, user) == 1 then
        out[i] = {'prequeue', ev.open, 0, now}
      elseif redis.call('SCARD', ev.pq) >= (max > 0 and math.min(max, 1000000) or 1000000) then
        out[i] = {'full'}
      else
        redis.call('SADD', ev.pq, user)
        gk_event(KEYS[6], KEYS[5], evmax, now, 'prequeue', user, ip, {event_id = ev.id})
        out[i] = {'prequeue', ev.open, 1, now}
      end
    elseif gk_sched_waits(ev, user) then
      out[i] = {'prequeue', ev.open, 0, now}
    elseif ev and ev.phase == 'closed' then
      out[i] = {'closed'}
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
      if ticket % 16 == 0 or now - tt_at >= 1000 then
        redis.call('ZADD', tt, ticket, ticket .. ':' .. now)
        redis.call('HSET', KEYS[5], 'tt_at', now)
        tt_at = now
      end
      if heartbeat then redis.call('ZADD', KEYS[4], now, user) end
      waiting = waiting + 1
      gk_event(KEYS[6], KEYS[5], evmax, now, 'enqueue', user, ip, {position = waiting, ticket = ticket})
      out[i] = {'new', waiting + held, rate, waiting + held, ticket}
    end
  end
end
return out
