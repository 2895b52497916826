-- verify: is this user ready now? Read-only. KEYS: ready, clock. ARGV: user, test clock (0/1).
-- Returns the ready-until time in ms, or 0.
local now = gk_now_ms(ARGV[2] == '1' and KEYS[2] or nil)
local ready_until = tonumber(redis.call('ZSCORE', KEYS[1], ARGV[1]))
if ready_until and ready_until > now then return ready_until end
return 0
