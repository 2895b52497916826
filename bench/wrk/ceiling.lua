-- GET /health?shallow: answered from memory, the in-process ceiling every route is compared with.
request = function()
  return wrk.format("GET", "/health?shallow")
end
