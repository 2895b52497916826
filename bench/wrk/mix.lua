-- The flash crowd after its burst: 1 enqueue for every 9 status polls of queued users
-- (TOKENS file, BUSINESS env). Requests are prebuilt as in status.lua and enqueue.lua.
local polls, i, n, head, tail = {}, 0, 0
function init()
  local business = os.getenv("BUSINESS")
  for line in io.lines(os.getenv("TOKENS")) do
    polls[#polls + 1] = wrk.format("GET", "/queue/status", {["business_id"] = business, ["jwt"] = line})
  end
  head, tail = enqueue_halves(business, "mix" .. tostring(math.random(1, 1e9)) .. "-")
end
request = function()
  n = n + 1
  if n % 10 == 0 then
    return head .. n .. tail
  end
  i = i % #polls + 1
  return polls[i]
end
