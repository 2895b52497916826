-- The well-behaved client of the abuse test: GET /queue/status with the tokens of queued users
-- of business "good", round robin (TOKENS file), each connection pausing PAUSE_MS between polls,
-- so it measures latency at a steady, modest rate instead of saturating the machine.
local tokens, i = {}, 0
for line in io.lines(os.getenv("TOKENS")) do tokens[#tokens + 1] = line end
local pause = tonumber(os.getenv("PAUSE_MS") or "5")
request = function()
  i = i % #tokens + 1
  return wrk.format("GET", "/queue/status", {["business_id"] = "good", ["jwt"] = tokens[i]})
end
delay = function()
  return pause
end
