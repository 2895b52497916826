-- leave: the user gives up their place, waiting or ready. KEYS: wait, ready, hb.
-- ARGV: user. Returns 1 when they were waiting, 2 when ready, 0 when in neither.
local left = 0
if redis.call('ZREM', KEYS[1], ARGV[1]) == 1 then
  left = 1
elseif redis.call('ZREM', KEYS[2], ARGV[1]) == 1 then
  left = 2
end
redis.call('ZREM', KEYS[3], ARGV[1])
return left
