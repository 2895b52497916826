-- sched_place: puts one batch of a scheduled event's pre-queue into the line in draw order, on
-- the block of tickets gk_sched_seal reserved at opening (first user, first ticket of the block).
-- The event hash's place_next records how many are placed, so any number of workers may call it,
-- and one killed between batches leaves the rest to the next: a batch that does not start there
-- places nothing. placed is set (and the pre-queue, which the draw is computed from until then,
-- deleted) with the last batch.
-- Written by gk_store_sched_place (src/store_sched.c).
-- KEYS: the event's hash, its pre-queue, wait, hb, stats, events, clock.
-- ARGV: event id, last ticket of the block, events max, test clock, pre-queue size, index (from 0)
-- of the batch's first user in draw order, then the batch's users in draw order.
-- Returns how many are placed after the call (the pre-queue size once done), or an error when
-- the block or its size differ from the ones sealed.
local now = gk_now_ms(ARGV[4] == '1' and KEYS[7] or nil)
local f = redis.call('HMGET', KEYS[1], 'sealed', 'n', 'placed', 'place_next')
local n = tonumber(ARGV[5])
if tonumber(f[1]) ~= tonumber(ARGV[2]) or tonumber(f[2]) ~= n then
  return redis.error_reply('ERR draw does not match the sealed pre-queue')
end
if f[3] == '1' then return n end
local done, from, m = tonumber(f[4]) or 0, tonumber(ARGV[6]), #ARGV - 6
if from ~= done or from + m > n then return done end
local first = tonumber(ARGV[2]) - n + 1
for i = 1, m, 500 do
  local args, hb = {}, {}
  for j = i, math.min(i + 499, m) do
    local k = #args
    args[k + 1] = first + from + j - 1
    args[k + 2] = ARGV[6 + j]
    hb[k + 1] = now
    hb[k + 2] = ARGV[6 + j]
  end
  redis.call('ZADD', KEYS[3], unpack(args))
  redis.call('ZADD', KEYS[4], 'NX', unpack(hb))
end
done = from + m
redis.call('HINCRBY', KEYS[5], 'enqueued_total', m)
if m > 0 then
  local users = {}
  for j = 1, m do users[j] = ARGV[6 + j] end
  gk_events(KEYS[6], KEYS[5], tonumber(ARGV[3]), now, 'draw', users, '',
            {event_id = ARGV[1], first_ticket = first + from})
end
if done < n then
  redis.call('HSET', KEYS[1], 'place_next', done)
  return done
end
-- The pre-queue's wait is counted from the opening: one join-time sample for the block.
redis.call('ZADD', string.sub(KEYS[3], 1, -5) .. 'tt', first, first .. ':' .. now)
redis.call('HSET', KEYS[1], 'placed', '1', 'place_next', done)
redis.call('UNLINK', KEYS[2])
return n
