-- POST /queue/enqueue with a distinct user id per request (BUSINESS env; PREFIX keeps runs apart).
-- The request is two prebuilt halves around the user id's counter (see ceiling.lua).
local n, head, tail = 0
function init()
  local id = (os.getenv("PREFIX") or "e") .. tostring(math.random(1, 1e9)) .. "-"
  local req = wrk.format("POST", "/queue/enqueue", {["business_id"] = os.getenv("BUSINESS"),
                         ["user_id"] = id .. "\0", ["Content-Length"] = "0"})
  head, tail = req:match("^(.-)%z(.*)$")
end
request = function()
  n = n + 1
  return head .. n .. tail
end
