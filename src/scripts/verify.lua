-- verify: is this user ready now?
-- Its call is written by verify_cmd (src/pipeline_queue.c), in this order:
-- KEYS: ready, stats, events, seen (this user's), ratelimit, clock.
-- ARGV: user, client ip, events max, rate limit, rate interval ms, via ('verify' or 'gate'),
--       test clock (0/1).
-- Returns {'limited', retry_ms} or {'ok', ready-until ms, or 0 when not ready now}.
-- The answer is recorded as a verify event only when the user's seen key (their last recorded
-- answer, kept a minute) is absent or says otherwise: a backend checking every request of a
-- visitor would otherwise write a row per request.
local user, ip, evmax, via = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[6]
local now = gk_now_ms(ARGV[7] == '1' and KEYS[6] or nil)
local wait = gk_rate_check(KEYS[5], tonumber(ARGV[4]), tonumber(ARGV[5]), KEYS[3], KEYS[2], evmax, now, via, user, ip)
if wait > 0 then return {'limited', wait} end
local ready_until = tonumber(redis.call('ZSCORE', KEYS[1], user))
local ready = ready_until ~= nil and ready_until > now
local state = ready and 'ready' or 'not_ready'
if redis.call('GET', KEYS[4]) ~= state then
  redis.call('SET', KEYS[4], state, 'PX', 60000)
  gk_event(KEYS[3], KEYS[2], evmax, now, 'verify', user, ip, {ready = ready, via = via})
end
return {'ok', ready and ready_until or 0}
