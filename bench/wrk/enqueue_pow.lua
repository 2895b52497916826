-- POST /queue/enqueue with a proof of work: a distinct user id and a distinct payload (PAYLOADS
-- file, one per line, from gk-bench-pow) per request (BUSINESS env). Past the last payload they
-- come round again and are refused as reused (counted as errors).
local payloads, n, business, prefix = {}, 0
function init()
  business = os.getenv("BUSINESS")
  prefix = "p" .. tostring(math.random(1, 1e9)) .. "-"
  for line in io.lines(os.getenv("PAYLOADS")) do
    payloads[#payloads + 1] = line
  end
end
request = function()
  n = n + 1
  return wrk.format("POST", "/queue/enqueue", {["business_id"] = business, ["user_id"] = prefix .. n,
                    ["X-Gatekeeper-Pow"] = payloads[(n - 1) % #payloads + 1], ["Content-Length"] = "0"})
end
