-- enqueue: join the queue once. KEYS: seq, wait, ready, hb, stats, ratelimit, events, clock.
-- ARGV: user, rate limit, rate interval ms, max queue length (0 = none), passthrough (0/1),
--       ready ttl ms, heartbeat (0/1), client ip, events max, max active users (0 = none),
--       test clock (0/1).
-- Returns {kind, a, b}: {'limited', retry_ms}, {'ready', until_ms}, {'waiting', rank},
-- {'full'}, {'admitted', until_ms}, {'new', rank}; 'waiting' and 'new' add the measured
-- admissions per second ('' if none yet) and how many users wait in all.
local user, ip, evmax = ARGV[1], ARGV[8], tonumber(ARGV[9])
local now = gk_now_ms(ARGV[11] == '1' and KEYS[8] or nil)
local wait = gk_rate_check(KEYS[6], tonumber(ARGV[2]), tonumber(ARGV[3]), KEYS[7], KEYS[5], evmax, now, 'enqueue',
                           user, ip)
if wait > 0 then
  return {'limited', wait}
end

local ready_until = tonumber(redis.call('ZSCORE', KEYS[3], user))
if ready_until then
  if ready_until > now then return {'ready', ready_until} end
  redis.call('ZREM', KEYS[3], user) -- expired: joins again at the back
  redis.call('HINCRBY', KEYS[5], 'expired_total', 1)
  gk_event(KEYS[7], KEYS[5], evmax, now, 'expire', user, '', {ready_until = ready_until})
end
local function answer(kind, r)
  return {kind, r + 1, redis.call('HGET', KEYS[5], 'admit_rate') or '', redis.call('ZCARD', KEYS[2])}
end
local rank = redis.call('ZRANK', KEYS[2], user)
if rank then return answer('waiting', rank) end

local max = tonumber(ARGV[4])
if max > 0 and redis.call('ZCARD', KEYS[2]) >= max then return {'full'} end
redis.call('HINCRBY', KEYS[5], 'enqueued_total', 1)
if ARGV[5] == '1' and gk_passthrough_room(KEYS[2], KEYS[3], now, tonumber(ARGV[10])) then
  local until_ms = now + tonumber(ARGV[6])
  redis.call('ZADD', KEYS[3], until_ms, user)
  redis.call('HINCRBY', KEYS[5], 'admitted_total', 1)
  redis.call('HSET', KEYS[5], 'last_admission_at', now)
  gk_event(KEYS[7], KEYS[5], evmax, now, 'enqueue', user, ip, {passthrough = true})
  gk_event(KEYS[7], KEYS[5], evmax, now, 'admit', user, ip, {method = 'passthrough', ready_until = until_ms})
  return {'admitted', until_ms}
end
-- The score is a ticket from one counter, never a clock: first come, first served.
local ticket = redis.call('INCR', KEYS[1])
redis.call('ZADD', KEYS[2], ticket, user)
if ARGV[7] == '1' then redis.call('ZADD', KEYS[4], now, user) end
-- The newest ticket is the highest, so the new user is last: their place is the queue's length.
local waiting = redis.call('ZCARD', KEYS[2])
gk_event(KEYS[7], KEYS[5], evmax, now, 'enqueue', user, ip, {position = waiting, ticket = ticket})
return {'new', waiting, redis.call('HGET', KEYS[5], 'admit_rate') or '', waiting}
