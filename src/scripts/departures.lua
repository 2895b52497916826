-- departures: what an API node needs to bring its view of a business's line up to date
-- (src/qnode.c): the departure log from the node's cursor on, or, for a rebuild, the tickets of
-- the waiting set above a ticket. Read-only; any number of nodes read at once.
-- Its call is written by departures_cmd (src/pipeline_queue.c), in this order:
-- KEYS: seq, gone, gone_seq, stats, wait, evs (the scheduled events' index, see gk_sched in
--       common.lua).
-- ARGV: mode ('log' or 'scan'), from (log: how many departures the node has applied; scan: the
--       ticket to read above), max entries.
-- Returns {mode, departures ever recorded, newest ticket, admit_rate ('' if none), admissions
-- ever (stats.admitted_total), tickets...}:
-- for 'log', the departed tickets from the cursor on (up to max), or mode 'behind' and no
-- tickets when the log no longer holds the cursor's entry; for 'scan', up to max tickets of the
-- waiting set above `from`, ascending, counting as waiting the block of tickets an opened event
-- reserved for its pre-queue until the draw places it (gk_sched_seal): they are ahead of every
-- later ticket, though not in the waiting set yet.
local mode, from, max = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local total = tonumber(redis.call('GET', KEYS[3])) or 0
local newest = tonumber(redis.call('GET', KEYS[1])) or 0
local rate = redis.call('HGET', KEYS[4], 'admit_rate') or ''
local out = {mode, total, newest, rate, tonumber(redis.call('HGET', KEYS[4], 'admitted_total')) or 0}
if mode == 'log' then
  local len = redis.call('LLEN', KEYS[2])
  if from < total - len or from > total then
    out[1] = 'behind'
    return out
  end
  local start = from - (total - len)
  local got = redis.call('LRANGE', KEYS[2], start, start + max - 1)
  for i = 1, #got do out[5 + i] = tonumber(got[i]) end
else
  local got = redis.call('ZRANGEBYSCORE', KEYS[5], '(' .. from, '+inf', 'WITHSCORES', 'LIMIT', 0, max)
  local tickets = {}
  for i = 2, #got, 2 do tickets[#tickets + 1] = tonumber(got[i]) end
  -- Events never overlap, so a block still to place belongs to one of the two newest.
  local pre = string.sub(KEYS[6], 1, -4)
  local block = false
  for _, id in ipairs(redis.call('ZRANGE', KEYS[6], -2, -1)) do
    local f = redis.call('HMGET', pre .. 'ev:' .. id, 'sealed', 'n', 'placed')
    local sealed, n = tonumber(f[1]), tonumber(f[2]) or 0
    if sealed and n > 0 and f[3] ~= '1' then
      for t = math.max(sealed - n + 1, from + 1), math.min(sealed, from + max) do
        tickets[#tickets + 1] = t
        block = true
      end
    end
  end
  if block then table.sort(tickets) end
  for i = 1, math.min(#tickets, max) do out[5 + i] = tickets[i] end
end
return out
