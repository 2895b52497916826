-- sched_put: mirrors a new scheduled event into Redis (see gk_sched in common.lua), where
-- enqueue, status and tick find it. Written by gk_store_sched_put (src/store_sched.c).
-- KEYS: evs, the event's hash.
-- ARGV: event id, prequeue_opens_at ms, opens_at ms, ends_at ms (0 = none), then the overrides
--       admission limit, frequency ms, ready ttl ms, max active ('' = not overridden).
-- Returns 1.
redis.call('HSET', KEYS[2], 'open', ARGV[3], 'end', ARGV[4])
local fields = {'lim', 'freq', 'ttl', 'maxa'}
for i = 1, 4 do
  if ARGV[4 + i] ~= '' then redis.call('HSET', KEYS[2], fields[i], ARGV[4 + i]) end
end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
return 1
