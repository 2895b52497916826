-- POST /queue/enqueue with a distinct user id per request (BUSINESS env; PREFIX keeps runs apart).
local n, prefix, business = 0, os.getenv("PREFIX") or "e", os.getenv("BUSINESS")
local id = tostring(math.random(1, 1e9))
request = function()
  n = n + 1
  return wrk.format("POST", "/queue/enqueue", {["business_id"] = business,
                    ["user_id"] = prefix .. id .. "-" .. n, ["Content-Length"] = "0"})
end
