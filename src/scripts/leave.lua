-- leave: the user gives up their place, waiting or ready.
-- Its call is written by leave_cmd (src/pipeline_queue.c), in this order:
-- KEYS: wait, ready, hb, stats, events, evs (the scheduled events' index, see gk_sched in
--       common.lua), ratelimit, clock, gone, gone_seq (the departure log).
-- ARGV: user, client ip, events max, rate limit, rate interval ms, test clock (0/1).
-- Returns {'limited', retry_ms} or {'ok', 1 when they were waiting (or in a pre-queue still open),
-- 2 when ready, 0 when in neither}. A pre-queue that has opened is fixed until the draw places it.
-- Each user who did leave counts once in the stats hash's left_total.
local user, ip, evmax = ARGV[1], ARGV[2], tonumber(ARGV[3])
local now = gk_now_ms(ARGV[6] == '1' and KEYS[8] or nil)
local wait = gk_rate_check(KEYS[7], tonumber(ARGV[4]), tonumber(ARGV[5]), KEYS[5], KEYS[4], evmax, now, 'leave',
                           user, ip)
if wait > 0 then return {'limited', wait} end
local left = 0
local ticket = redis.call('ZSCORE', KEYS[1], user)
if ticket and redis.call('ZREM', KEYS[1], user) == 1 then
  left = 1
  gk_departed(KEYS[9], KEYS[10], {ticket})
elseif redis.call('ZREM', KEYS[2], user) == 1 then
  left = 2
else
  local ev = gk_sched(KEYS[6], now)
  if ev and ev.phase == 'prequeue' and redis.call('SREM', ev.pq, user) == 1 then left = 1 end
end
redis.call('ZREM', KEYS[3], user)
if left > 0 then
  redis.call('HINCRBY', KEYS[4], 'left_total', 1)
  gk_event(KEYS[5], KEYS[4], evmax, now, 'leave', user, ip, {from = left == 1 and 'waiting' or 'ready'})
end
return {'ok', left}
