-- wrk script: POST a JSON body with an API key (both from the environment). With
-- WRK_IDEMPOTENT=1 every request carries its own Idempotency-Key.
wrk.method = "POST"
wrk.body = os.getenv("WRK_BODY") or "{}"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["x-api-key"] = os.getenv("WRK_KEY") or ""

local idempotent = os.getenv("WRK_IDEMPOTENT") == "1"
local prefix, counter = "", 0

init = function(args)
  math.randomseed(os.time() + tonumber(tostring({}):match("0x(%x+)"), 16) % 100000)
  prefix = string.format("bench-%08x-%08x-", math.random(0, 0x7fffffff),
                         math.random(0, 0x7fffffff))
end

request = function()
  if not idempotent then
    return wrk.format()
  end
  counter = counter + 1
  wrk.headers["Idempotency-Key"] = prefix .. counter
  return wrk.format()
end

done = function(summary, latency, requests)
  io.write(string.format("RESULT %d %d %.3f %.3f %d\n", summary.requests,
    summary.duration, latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    summary.errors.status + summary.errors.connect + summary.errors.read
    + summary.errors.write + summary.errors.timeout))
end
