-- status: where is this user? Polling is a heartbeat.
-- KEYS: wait, ready, hb, ratelimit, stats, events, clock.
-- ARGV: user, rate limit, rate interval ms, heartbeat (0/1), client ip, events max, test clock (0/1).
-- Returns {'limited', retry_ms}, {'ready', until_ms}, {'waiting', rank, admit_rate, waiting},
-- {'expired'} or {'none'}. admit_rate is the measured admissions per second ('' if none yet);
-- waiting is how many users wait in all.
local user = ARGV[1]
local now = gk_now_ms(ARGV[7] == '1' and KEYS[7] or nil)
local wait = gk_rate_check(KEYS[4], tonumber(ARGV[2]), tonumber(ARGV[3]), KEYS[6], KEYS[5], tonumber(ARGV[6]), now,
                           'status', user, ARGV[5])
if wait > 0 then
  return {'limited', wait}
end

local rank = redis.call('ZRANK', KEYS[1], user)
if rank then
  if ARGV[4] == '1' then redis.call('ZADD', KEYS[3], now, user) end
  return {'waiting', rank + 1, redis.call('HGET', KEYS[5], 'admit_rate') or '', redis.call('ZCARD', KEYS[1])}
end
local ready_until = tonumber(redis.call('ZSCORE', KEYS[2], user))
if ready_until then
  if ready_until > now then return {'ready', ready_until} end
  return {'expired'}
end
return {'none'}
