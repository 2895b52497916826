-- leave: the user gives up their place, waiting or ready.
-- KEYS: wait, ready, hb, stats, events, clock. ARGV: user, client ip, events max, test clock (0/1).
-- Returns 1 when they were waiting, 2 when ready, 0 when in neither.
local now = gk_now_ms(ARGV[4] == '1' and KEYS[6] or nil)
local left = 0
if redis.call('ZREM', KEYS[1], ARGV[1]) == 1 then
  left = 1
elseif redis.call('ZREM', KEYS[2], ARGV[1]) == 1 then
  left = 2
end
redis.call('ZREM', KEYS[3], ARGV[1])
if left > 0 then
  gk_event(KEYS[5], KEYS[4], tonumber(ARGV[3]), now, 'leave', ARGV[1], ARGV[2],
           {from = left == 1 and 'waiting' or 'ready'})
end
return left
