-- events_ack: acknowledges activity events once PostgreSQL has committed them, then trims the
-- stream below the oldest entry not yet committed: the oldest still pending in the group, or,
-- with nothing pending, everything up to the last one delivered. Entries not yet delivered and
-- entries delivered but not acknowledged (a consumer died mid-batch) are never trimmed.
-- Its call is written by events_ack_cmd (src/store_events.c), in this order:
-- KEYS: events. ARGV: group, entry ids... Returns the stream length after trimming.
redis.call('XACK', KEYS[1], ARGV[1], unpack(ARGV, 2))
local floor
local pending = redis.call('XPENDING', KEYS[1], ARGV[1])
if tonumber(pending[1]) > 0 then
  floor = pending[2]
else
  for _, g in ipairs(redis.call('XINFO', 'GROUPS', KEYS[1])) do
    local name, last
    for i = 1, #g, 2 do
      if g[i] == 'name' then name = g[i + 1] elseif g[i] == 'last-delivered-id' then last = g[i + 1] end
    end
    if name == ARGV[1] and last then
      local ms, seq = string.match(last, '^(%d+)-(%d+)$')
      if ms then floor = ms .. '-' .. (tonumber(seq) + 1) end
    end
  end
end
if floor then redis.call('XTRIM', KEYS[1], 'MINID', floor) end
return redis.call('XLEN', KEYS[1])
