-- GET /queue/status (or PATH_) with the tokens of queued users, round robin (TOKENS file,
-- BUSINESS env). The requests are built once, in init (see ceiling.lua).
local reqs, i = {}, 0
function init()
  local path, business = os.getenv("PATH_") or "/queue/status", os.getenv("BUSINESS")
  for line in io.lines(os.getenv("TOKENS")) do
    reqs[#reqs + 1] = wrk.format("GET", path, {["business_id"] = business, ["jwt"] = line})
  end
end
request = function()
  i = i % #reqs + 1
  return reqs[i]
end
