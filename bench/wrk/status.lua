-- GET /queue/status with the tokens of queued users, round robin (TOKENS file, BUSINESS env).
local tokens, i = {}, 0
for line in io.lines(os.getenv("TOKENS")) do tokens[#tokens + 1] = line end
local business = os.getenv("BUSINESS")
request = function()
  i = i % #tokens + 1
  return wrk.format("GET", os.getenv("PATH_") or "/queue/status",
                    {["business_id"] = business, ["jwt"] = tokens[i]})
end
