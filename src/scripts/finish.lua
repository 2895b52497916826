-- finish: the backend is done with this user; frees the slot at once.
-- Its call is written by finish_cmd (src/pipeline_queue.c), in this order:
-- KEYS: ready, stats, events, ratelimit, clock.
-- ARGV: user, client ip, events max, rate limit, rate interval ms, test clock (0/1).
-- Returns {'limited', retry_ms} or {'ok', 1 if the user was ready, 0 if not} (an expired entry
-- is removed too).
local user, ip, evmax = ARGV[1], ARGV[2], tonumber(ARGV[3])
local now = gk_now_ms(ARGV[6] == '1' and KEYS[5] or nil)
local wait = gk_rate_check(KEYS[4], tonumber(ARGV[4]), tonumber(ARGV[5]), KEYS[3], KEYS[2], evmax, now, 'finish',
                           user, ip)
if wait > 0 then return {'limited', wait} end
local ready_until = tonumber(redis.call('ZSCORE', KEYS[1], user))
if not ready_until then return {'ok', 0} end
redis.call('ZREM', KEYS[1], user)
local was_ready = ready_until > now
if was_ready then redis.call('HINCRBY', KEYS[2], 'finished_total', 1) end
gk_event(KEYS[3], KEYS[2], evmax, now, 'finish', user, ip, {was_ready = was_ready})
return {'ok', was_ready and 1 or 0}
