-- verify: is this user ready now? Read-only. KEYS: ready. ARGV: user.
-- Returns the ready-until time in ms, or 0.
local now = gk_now_ms()
local ready_until = tonumber(redis.call('ZSCORE', KEYS[1], ARGV[1]))
if ready_until and ready_until > now then return ready_until end
return 0
