-- The soak's flash-crowd mix (bench/soak.sh), for wrk -t1: a closed loop of simulated visitors
-- that keeps the queue in a steady state for as long as it runs.
--
-- Visitors join until TARGET of them are waiting (the enqueue burst), then every request polls
-- the waiting visitor polled longest ago (round robin, so each polls every TARGET / polls-per-s
-- seconds), keeping the token it gets back. A poll that answers "ready" (the worker admitted
-- them) makes the visitor's backend verify them and finish them HOLD_MS later; READY_DROP of
-- them never come back instead, and their ready time runs out (ready_ttl_seconds). LEAVE_P of
-- the polls are replaced by a leave, and ABANDON_P of the time a waiting visitor is silently
-- forgotten (closes the tab), so the worker evicts them after abandon_after_seconds. Every
-- visitor who leaves the waiting set is replaced by a new one: arrivals = admissions + leaves +
-- abandons, and the number waiting stays at TARGET (plus at most one per connection in flight).
--
-- Env: BUSINESS, TARGET, RATE (requests/s for the whole run; unset = as fast as possible),
-- HOLD_MS (2000), READY_DROP (0.2), LEAVE_P (0.005), ABANDON_P (0.002), PREFIX (user ids),
-- STATS (a file rewritten every second with the counters below, for the sampler).
-- Pacing: delay() hands out send times from one schedule, 1000 / RATE ms apart, so the rate is
-- RATE whatever the latency, as long as the connections suffice (each connection waits for its
-- slot, so RATE * latency must stay well below the connection count). Visitors do not stop
-- arriving while the server stalls: slots missed because every connection was busy are sent as
-- soon as a connection is free, but at most one second of them; older ones are dropped.
local ffi = require("ffi")
ffi.cdef [[
typedef struct { long tv_sec; long tv_nsec; } gk_soak_timespec;
int clock_gettime(int clk, gk_soak_timespec *ts);
]]
local ts = ffi.new("gk_soak_timespec")
local function now_ms()
  ffi.C.clock_gettime(1, ts) -- CLOCK_MONOTONIC
  return tonumber(ts.tv_sec) * 1000 + tonumber(ts.tv_nsec) / 1e6
end

local business = os.getenv("BUSINESS")
local target = tonumber(os.getenv("TARGET"))
local rate = tonumber(os.getenv("RATE") or "")
local hold_ms = tonumber(os.getenv("HOLD_MS") or "2000")
local ready_drop = tonumber(os.getenv("READY_DROP") or "0.2")
local leave_p = tonumber(os.getenv("LEAVE_P") or "0.005")
local abandon_p = tonumber(os.getenv("ABANDON_P") or "0.002")
local stats_file = os.getenv("STATS")
math.randomseed(os.time())
local prefix = (os.getenv("PREFIX") or "s") .. tostring(math.random(1, 1e9)) .. "-"

-- Counters, read by done() through thread:get and written to STATS. codes: by HTTP status.
c = {responses = 0, enqueue = 0, enqueue_new = 0, status = 0, st_waiting = 0, st_ready = 0,
     st_gone = 0, verify = 0, verify_ready = 0, finish = 0, finish_cleared = 0, leave = 0,
     leave_left = 0, ready_dropped = 0, abandoned = 0, other = 0, waiting = 0,
     fill_ms = 0, fill_responses = 0, last_ms = 0}
codes = {}

-- The waiting visitors' tokens, oldest poll first (a FIFO of increasing indices).
local wq, wh, wt = {}, 1, 0
local function wlen() return wt - wh + 1 end
local function wpush(t) wt = wt + 1; wq[wt] = t end
local function wpop()
  local t = wq[wh]
  wq[wh] = nil
  wh = wh + 1
  return t
end
local ready = {}                         -- admitted visitors seen by a poll, to verify
local fq, fh, ft = {}, 1, 0              -- verified visitors: {token, finish at}, in time order
local n, filled = 0, false

local function q(method, path, token)
  return wrk.format(method, path, {["business_id"] = business, ["jwt"] = token})
end

request = function()
  local now = now_ms()
  while #ready > 0 do
    local t = table.remove(ready)
    if math.random() >= ready_drop then
      ft = ft + 1
      fq[ft] = {t, now + hold_ms}
      return q("GET", "/queue/verify", t)
    end
    c.ready_dropped = c.ready_dropped + 1
  end
  if fh <= ft and fq[fh][2] <= now then
    local t = fq[fh][1]
    fq[fh] = nil
    fh = fh + 1
    return q("DELETE", "/queue/finish", t)
  end
  if wlen() < target then
    n = n + 1
    return wrk.format("POST", "/queue/enqueue", {["business_id"] = business,
                      ["user_id"] = prefix .. n, ["Content-Length"] = "0"})
  end
  local r = math.random()
  if r < leave_p then return q("DELETE", "/queue/leave", wpop()) end
  if r < leave_p + abandon_p then
    wpop()
    c.abandoned = c.abandoned + 1
  end
  return q("GET", "/queue/status", wpop())
end

local last_write = 0
local function write_stats(now)
  local f = io.open(stats_file .. ".tmp", "w")
  if not f then return end
  local parts = {}
  for k, v in pairs(c) do parts[#parts + 1] = k .. "=" .. string.format("%.0f", v) end
  for k, v in pairs(codes) do parts[#parts + 1] = "code_" .. k .. "=" .. v end
  f:write(table.concat(parts, " "), "\n")
  f:close()
  os.rename(stats_file .. ".tmp", stats_file)
  last_write = now
end

response = function(status, headers, body)
  local now = now_ms()
  c.responses = c.responses + 1
  c.last_ms = now
  codes[status] = (codes[status] or 0) + 1
  if status == 200 then
    local tok = body:match('"jwt_token":"([^"]*)"')
    if tok then
      c.status = c.status + 1
      local state = body:match('"state":"(%a+)"')
      if state == "waiting" then
        c.st_waiting = c.st_waiting + 1
        wpush(tok)
      elseif state == "ready" then
        c.st_ready = c.st_ready + 1
        ready[#ready + 1] = tok
      else
        c.st_gone = c.st_gone + 1
      end
    elseif body:find('"ready":', 1, true) and body:find('"message":"User is', 1, true) then
      c.verify = c.verify + 1
      if body:find('"ready":true', 1, true) then c.verify_ready = c.verify_ready + 1 end
    else
      tok = body:match('"jwt":"([^"]*)"')
      if tok then
        c.enqueue = c.enqueue + 1
        if tok ~= "" then
          c.enqueue_new = c.enqueue_new + 1
          wpush(tok)
        end
      elseif body:find('"status":"ready_cleared"', 1, true) or body:find('"status":"not_ready"', 1, true) then
        c.finish = c.finish + 1
        if body:find('ready_cleared', 1, true) then c.finish_cleared = c.finish_cleared + 1 end
      elseif body:find('"status":"left"', 1, true) or body:find('"status":"not_found"', 1, true) then
        c.leave = c.leave + 1
        if body:find('"status":"left"', 1, true) then c.leave_left = c.leave_left + 1 end
      else
        c.other = c.other + 1
      end
    end
  else
    c.other = c.other + 1
  end
  c.waiting = wlen()
  if not filled and wlen() >= target then
    filled = true
    c.fill_ms, c.fill_responses = now, c.responses
  end
  if stats_file and now - last_write >= 1000 then write_stats(now) end
end

if rate and rate > 0 then
  local gap, next_at = 1000 / rate, nil
  delay = function()
    local now = now_ms()
    if not next_at then next_at = now end
    if next_at < now - 1000 then next_at = now - 1000 end
    local d = next_at - now
    next_at = next_at + gap
    return d > 0 and math.floor(d + 0.5) or 0
  end
end

-- The main state: collects the thread and, after report.lua's RESULT line, prints
-- "SOAK key=value..." with the socket errors, the codes and the counters, and the rate after
-- the enqueue burst ("steady_rps": responses after the queue first held TARGET, per second).
local threads = {}
setup = function(thread) threads[#threads + 1] = thread end
local report_done = done
done = function(summary, latency, requests)
  if report_done then report_done(summary, latency, requests) end
  local e = summary.errors
  local parts = {"SOAK", "connect=" .. e.connect, "read=" .. e.read, "write=" .. e.write,
                 "timeout=" .. e.timeout, "status_errors=" .. e.status}
  for _, t in ipairs(threads) do
    local tc, tcodes = t:get("c"), t:get("codes")
    for k, v in pairs(tc) do parts[#parts + 1] = k .. "=" .. string.format("%.0f", v) end
    for k, v in pairs(tcodes) do parts[#parts + 1] = "code_" .. k .. "=" .. v end
    local steady = 0
    if tc.fill_ms > 0 and tc.last_ms > tc.fill_ms then
      steady = (tc.responses - tc.fill_responses) * 1000 / (tc.last_ms - tc.fill_ms)
    end
    parts[#parts + 1] = string.format("steady_rps=%.1f", steady)
  end
  io.write(table.concat(parts, " "), "\n")
end
