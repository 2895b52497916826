-- Shared by the bench scripts: one machine-readable line per run, with p99.9 that wrk's own
-- --latency output lacks.
function done(summary, latency, requests)
  local errors = summary.errors.connect + summary.errors.read + summary.errors.write
                 + summary.errors.status + summary.errors.timeout
  io.write(string.format("RESULT %.1f %.3f %.3f %.3f %d %d\n",
    summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, latency:percentile(99.9) / 1000,
    errors, summary.requests))
end

-- An enqueue request for user ids `id` .. n, as the two halves around n: a request is then one
-- concatenation, not a wrk.format (call from init, once wrk knows its Host).
function enqueue_halves(business, id)
  local req = wrk.format("POST", "/queue/enqueue", {["business_id"] = business,
                         ["user_id"] = id .. "\0", ["Content-Length"] = "0"})
  return req:match("^(.-)%z(.*)$")
end
