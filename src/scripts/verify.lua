-- verify: is this user ready now? Records the check. KEYS: ready, stats, events, clock.
-- ARGV: user, client ip, events max, via ('verify' or 'gate'), test clock (0/1).
-- Returns the ready-until time in ms, or 0.
local now = gk_now_ms(ARGV[5] == '1' and KEYS[4] or nil)
local ready_until = tonumber(redis.call('ZSCORE', KEYS[1], ARGV[1]))
local ready = ready_until ~= nil and ready_until > now
gk_event(KEYS[3], KEYS[2], tonumber(ARGV[3]), now, 'verify', ARGV[1], ARGV[2], {ready = ready, via = ARGV[4]})
if ready then return ready_until end
return 0
