-- heartbeat: the polls of waiting users that an API node answered from memory, recorded as one
-- batch per business and refresh (src/qnode.c): each user's last poll becomes now. Only users
-- with a heartbeat entry are touched (XX), so a user who left, was admitted or evicted meanwhile
-- is not brought back.
-- Its call is written by heartbeat_cmd (src/pipeline_queue.c), in this order:
-- KEYS: hb, clock. ARGV: test clock (0/1), then the users.
-- Returns how many entries were updated.
local now = gk_now_ms(ARGV[1] == '1' and KEYS[2] or nil)
local n = 0
for i = 2, #ARGV, 500 do
  local args = {}
  for j = i, math.min(i + 499, #ARGV) do
    args[#args + 1] = now
    args[#args + 1] = ARGV[j]
  end
  n = n + redis.call('ZADD', KEYS[1], 'XX', 'CH', unpack(args))
end
return n
