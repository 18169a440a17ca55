-- wrk: lock cycles (POST acquire, DELETE release) on one keep-alive
-- connection per thread/connection, one lock name per connection.
-- TOKEN comes from the environment (a `service` token).
local token = os.getenv("TOKEN")
local counter = 0
local threads = {}

function setup(thread)
  counter = counter + 1
  thread:set("id", counter)
  table.insert(threads, thread)
end

local conns = {}
local hdrs

function init(args)
  hdrs = { ["Authorization"] = "Bearer " .. token,
           ["Content-Type"] = "application/json" }
  cycles = 0
  failed = 0
end

-- wrk calls request() once per request and response() per answer, in order,
-- per connection; with several connections per thread the state is per
-- thread, so run one connection per thread (-t N -c N).
local lock_token = nil
local phase = 0

function request()
  -- RUN keeps runs apart: a run that ends between acquire and release
  -- leaves its lock held for ttl_ms, and the next run's acquires would 409
  local name = "bench:http:" .. (os.getenv("RUN") or "0") .. ":" .. id
  if phase == 0 then
    return wrk.format("POST", "/v1/locks/" .. name, hdrs, '{"ttl_ms":60000}')
  else
    return wrk.format("DELETE", "/v1/locks/" .. name, hdrs,
                      '{"token":"' .. (lock_token or "") .. '"}')
  end
end

function response(status, headers, body)
  if phase == 0 then
    if status == 200 then
      lock_token = body:match('"token":"([^"]+)"')
      phase = 1
    else
      failed = failed + 1
    end
  else
    if status == 200 then cycles = cycles + 1 else failed = failed + 1 end
    phase = 0
  end
end

function done(summary, latency, requests)
  local c, f = 0, 0
  for _, t in ipairs(threads) do
    c = c + t:get("cycles")
    f = f + t:get("failed")
  end
  io.write(string.format("cycles %d failed %d cycles/s %.0f\n", c, f,
                         c / (summary.duration / 1e6)))
end
