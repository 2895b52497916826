-- finish: the backend is done with this user; frees the slot at once. KEYS: ready, stats, clock.
-- ARGV: user, test clock (0/1). Returns 1 if the user was ready, 0 if not (an expired entry is removed too).
local now = gk_now_ms(ARGV[2] == '1' and KEYS[3] or nil)
local ready_until = tonumber(redis.call('ZSCORE', KEYS[1], ARGV[1]))
if not ready_until then return 0 end
redis.call('ZREM', KEYS[1], ARGV[1])
if ready_until <= now then return 0 end
redis.call('HINCRBY', KEYS[2], 'finished_total', 1)
return 1
