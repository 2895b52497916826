-- GET /health?shallow: answered from memory, the in-process ceiling every route is compared with.
-- Every script builds its requests once (init) or by joining prebuilt pieces: wrk shares the
-- cores with the server, so a load generator that formats each request costs the route.
local req
function init()
  req = wrk.format("GET", "/health?shallow")
end
request = function()
  return req
end
