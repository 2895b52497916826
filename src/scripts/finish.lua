-- finish: the backend is done with this user; frees the slot at once.
-- KEYS: ready, stats, events, clock. ARGV: user, client ip, events max, test clock (0/1).
-- Returns 1 if the user was ready, 0 if not (an expired entry is removed too).
local now = gk_now_ms(ARGV[4] == '1' and KEYS[4] or nil)
local ready_until = tonumber(redis.call('ZSCORE', KEYS[1], ARGV[1]))
if not ready_until then return 0 end
redis.call('ZREM', KEYS[1], ARGV[1])
local was_ready = ready_until > now
if was_ready then redis.call('HINCRBY', KEYS[2], 'finished_total', 1) end
gk_event(KEYS[3], KEYS[2], tonumber(ARGV[3]), now, 'finish', ARGV[1], ARGV[2], {was_ready = was_ready})
if was_ready then return 1 end
return 0
