-- sched_place: puts a scheduled event's pre-queue into the line in draw order, on the block of
-- tickets gk_sched_seal reserved at opening (first user, first ticket of the block). Any number
-- of workers may call it; the first places, the others find it done.
-- Written by gk_store_sched_place (src/store_sched.c).
-- KEYS: the event's hash, its pre-queue, wait, hb, stats, events, clock.
-- ARGV: event id, last ticket of the block, events max, test clock, then the users in draw order.
-- Returns the users placed (0 when already done), or an error when the block or its size differ
-- from the ones sealed.
local now = gk_now_ms(ARGV[4] == '1' and KEYS[7] or nil)
local f = redis.call('HMGET', KEYS[1], 'sealed', 'n', 'placed')
if f[3] == '1' then return 0 end
local n = #ARGV - 4
if tonumber(f[1]) ~= tonumber(ARGV[2]) or tonumber(f[2]) ~= n then
  return redis.error_reply('ERR draw does not match the sealed pre-queue')
end
local first = tonumber(ARGV[2]) - n + 1
for i = 1, n, 500 do
  local args, hb = {}, {}
  for j = i, math.min(i + 499, n) do
    local k = #args
    args[k + 1] = first + j - 1
    args[k + 2] = ARGV[4 + j]
    hb[k + 1] = now
    hb[k + 2] = ARGV[4 + j]
  end
  redis.call('ZADD', KEYS[3], unpack(args))
  redis.call('ZADD', KEYS[4], 'NX', unpack(hb))
end
-- The pre-queue's wait is counted from the opening: one join-time sample for the block.
redis.call('ZADD', string.sub(KEYS[3], 1, -5) .. 'tt', first, first .. ':' .. now)
redis.call('HSET', KEYS[1], 'placed', '1')
redis.call('UNLINK', KEYS[2])
redis.call('HINCRBY', KEYS[5], 'enqueued_total', n)
local users = {}
for j = 1, n do users[j] = ARGV[4 + j] end
gk_events(KEYS[6], KEYS[5], tonumber(ARGV[3]), now, 'draw', users, '', {event_id = ARGV[1], first_ticket = first})
return n
