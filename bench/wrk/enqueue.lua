-- POST /queue/enqueue with a distinct user id per request (BUSINESS env; PREFIX keeps runs apart).
-- The request is two prebuilt halves around the user id's counter (see ceiling.lua).
local n, head, tail = 0
function init()
  head, tail = enqueue_halves(os.getenv("BUSINESS"),
                              (os.getenv("PREFIX") or "e") .. tostring(math.random(1, 1e9)) .. "-")
end
request = function()
  n = n + 1
  return head .. n .. tail
end
