-- sched_cancel: cancels a scheduled event before it opens (by Redis's clock). Whoever is in its
-- pre-queue joins the line at once, behind those already waiting, in no particular order.
-- Written by gk_store_sched_cancel (src/store_sched.c).
-- KEYS: evs, the event's hash, its pre-queue, seq, wait, hb, stats, events, clock.
-- ARGV: event id, events max, test clock.
-- Returns {'late'} when the event has opened, else {'ok', users moved to the line}.
local now = gk_now_ms(ARGV[3] == '1' and KEYS[9] or nil)
local open = tonumber(redis.call('HGET', KEYS[2], 'open'))
if open and now >= open then return {'late'} end
local users = redis.call('SMEMBERS', KEYS[3])
local ticket = redis.call('INCRBY', KEYS[4], #users) - #users
for i = 1, #users, 500 do
  local args, hb = {}, {}
  for j = i, math.min(i + 499, #users) do
    ticket = ticket + 1
    local k = #args
    args[k + 1] = ticket
    args[k + 2] = users[j]
    hb[k + 1] = now
    hb[k + 2] = users[j]
  end
  redis.call('ZADD', KEYS[5], unpack(args))
  redis.call('ZADD', KEYS[6], 'NX', unpack(hb))
end
if #users > 0 then
  redis.call('HINCRBY', KEYS[7], 'enqueued_total', #users)
  gk_events(KEYS[8], KEYS[7], tonumber(ARGV[2]), now, 'enqueue', users, '', {event_id = ARGV[1], cancelled = true})
end
redis.call('UNLINK', KEYS[2], KEYS[3])
redis.call('ZREM', KEYS[1], ARGV[1])
return {'ok', #users}
