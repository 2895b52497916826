-- The flash crowd after its burst: 1 enqueue for every 9 status polls of queued users
-- (TOKENS file, BUSINESS env). Requests are prebuilt as in status.lua and enqueue.lua.
local polls, i, n, head, tail = {}, 0, 0
function init()
  local business = os.getenv("BUSINESS")
  for line in io.lines(os.getenv("TOKENS")) do
    polls[#polls + 1] = wrk.format("GET", "/queue/status", {["business_id"] = business, ["jwt"] = line})
  end
  local req = wrk.format("POST", "/queue/enqueue", {["business_id"] = business,
                         ["user_id"] = "mix" .. tostring(math.random(1, 1e9)) .. "-\0", ["Content-Length"] = "0"})
  head, tail = req:match("^(.-)%z(.*)$")
end
request = function()
  n = n + 1
  if n % 10 == 0 then
    return head .. n .. tail
  end
  i = i % #polls + 1
  return polls[i]
end
