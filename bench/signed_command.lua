-- wrk script: POST signed Slack slash commands to /slack/events.
--
-- wrk's LuaJIT has no HMAC, so bench/ack_latency.py signs a pool of requests in Python
-- (HMAC-SHA256 over "v0:<timestamp>:<body>", timestamps taken just before the run, well
-- within Slack's 5 minutes) and writes them to a Lua file that returns
--   { { timestamp, "v0=<hex signature>", body }, ... }
-- named by the SIGNED_POOL environment variable. Each wrk thread cycles through the pool,
-- starting at a different place.
--
-- With SIGNED_DELAY_MS set, each connection waits that long before each request (a fixed
-- offered rate of connections * 1000 / SIGNED_DELAY_MS requests/s instead of a closed loop).
--
--   SIGNED_POOL=/tmp/pool.lua wrk -t1 -c8 -d10s -s bench/signed_command.lua http://127.0.0.1:3000

local pool_file = os.getenv("SIGNED_POOL")
assert(pool_file, "SIGNED_POOL must name the generated pool of signed requests")
local pool = dofile(pool_file)
assert(#pool > 0, "the pool of signed requests is empty")

local delay_ms = tonumber(os.getenv("SIGNED_DELAY_MS") or "")
local requests = {}
local next_index = 1

function setup(thread)
  -- spread the threads over the pool
  thread:set("start_at", math.random(#pool))
end

function init(args)
  for i, entry in ipairs(pool) do
    requests[i] = wrk.format("POST", "/slack/events", {
      ["Content-Type"] = "application/x-www-form-urlencoded",
      ["X-Slack-Request-Timestamp"] = entry[1],
      ["X-Slack-Signature"] = entry[2],
    }, entry[3])
  end
  next_index = (start_at or 1)
end

function request()
  local r = requests[next_index]
  next_index = next_index % #requests + 1
  return r
end

if delay_ms then
  function delay()
    return delay_ms
  end
end

-- One JSON line the benchmark reads back (latencies in microseconds).
function done(summary, latency, requests_)
  local e = summary.errors
  io.write(string.format(
    'WRK_RESULT {"requests": %d, "duration_us": %d, "connect_errors": %d, "read_errors": %d, '
      .. '"write_errors": %d, "status_errors": %d, "timeouts": %d, "p50_us": %d, '
      .. '"p90_us": %d, "p99_us": %d, "max_us": %d, "mean_us": %.1f}\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
    latency.mean
  ))
end
