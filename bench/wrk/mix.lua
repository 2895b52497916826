-- The flash crowd after its burst: 1 enqueue for every 9 status polls of queued users
-- (TOKENS file, BUSINESS env).
local tokens, i, n = {}, 0, 0
for line in io.lines(os.getenv("TOKENS")) do tokens[#tokens + 1] = line end
local business, id = os.getenv("BUSINESS"), tostring(math.random(1, 1e9))
request = function()
  n = n + 1
  if n % 10 == 0 then
    return wrk.format("POST", "/queue/enqueue", {["business_id"] = business,
                      ["user_id"] = "mix" .. id .. "-" .. n, ["Content-Length"] = "0"})
  end
  i = i % #tokens + 1
  return wrk.format("GET", "/queue/status", {["business_id"] = business, ["jwt"] = tokens[i]})
end
