-- status: where is each user? A waiting user's poll is a heartbeat. One call serves one poll,
-- or the polls of one business that reach the pipeline together, so a burst pays Redis's
-- per-script cost once; users are answered in order.
-- Its call is written by status_cmd (src/pipeline_queue.c), in this order:
-- KEYS: wait, ready, hb, stats, events, clock, then one rate-limit key per user, then evs (the
--       scheduled events' index, see gk_sched in common.lua).
-- ARGV: rate limit, rate interval ms, heartbeat (0/1), events max, test clock (0/1), then
--       user and client ip for each user.
-- Returns one answer per user: {'limited', retry_ms}, {'ready', until_ms},
-- {'waiting', rank, admit_rate, waiting, ticket}, {'expired'} or {'none'}. admit_rate is the
-- measured admissions per second ('' if none yet); waiting is how many users wait in all; ticket
-- is the user's score in the waiting set.
-- A user in a scheduled event's pre-queue (not placed by its draw yet) gets {'prequeue', opens_at
-- ms, now ms}.
local now = gk_now_ms(ARGV[5] == '1' and KEYS[6] or nil)
local limit, interval, heartbeat, evmax = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3] == '1', tonumber(ARGV[4])
-- Read when the first waiting user needs them (nothing here changes either), so a poll that is
-- refused or finds its user ready costs no more than it must.
local rate, waiting, ev
local out = {}
for i = 1, (#ARGV - 5) / 2 do
  local user, ip = ARGV[4 + 2 * i], ARGV[5 + 2 * i]
  local wait = gk_rate_check(KEYS[6 + i], limit, interval, KEYS[5], KEYS[4], evmax, now, 'status', user, ip)
  if wait > 0 then
    out[i] = {'limited', wait}
  else
    local rank = redis.call('ZRANK', KEYS[1], user)
    if rank then
      if heartbeat then redis.call('ZADD', KEYS[3], now, user) end
      if not rate then
        rate, waiting = redis.call('HGET', KEYS[4], 'admit_rate') or '', redis.call('ZCARD', KEYS[1])
      end
      local ticket = tonumber(redis.call('ZSCORE', KEYS[1], user))
      if ev == nil then ev = gk_sched(KEYS[#KEYS], now) or false end
      -- Behind a pre-queue block reserved at the opening and still to place: the block is ahead.
      if ev and ev.sealed and not ev.placed and ticket > ev.sealed then
        out[i] = {'waiting', rank + 1 + ev.n, rate, waiting + ev.n, ticket}
      else
        out[i] = {'waiting', rank + 1, rate, waiting, ticket}
      end
    else
      local ready_until = tonumber(redis.call('ZSCORE', KEYS[2], user))
      if ready_until then
        out[i] = ready_until > now and {'ready', ready_until} or {'expired'}
      else
        if ev == nil then ev = gk_sched(KEYS[#KEYS], now) or false end
        if ev and gk_sched_waits(ev, user) then
          out[i] = {'prequeue', ev.open, now}
        else
          out[i] = {'none'}
        end
      end
    end
  end
end
return out
