-- wrk script for scripts/soak.sh: paced requests (each connection waits SOAK_DELAY_MS between
-- requests, so the load is a steady rate rather than as fast as the engine answers) and one
-- summary line. SOAK_MODE picks the requests:
--   healthz   GET /healthz
--   deliver   signed webhook deliveries with unique delivery IDs (WH_PATH, WH_BODY, WH_SIG)
--   api       the execution API: a start, a read of the run it started, a listing, in turn
local mode = os.getenv("SOAK_MODE") or "healthz"
local pause = tonumber(os.getenv("SOAK_DELAY_MS") or "10")
local threads = {}

function setup(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end

function init(args)
  counter = 0
  errors = 0
  last = nil
  prefix = string.format("%d-%d-%d-", os.time(), id, math.random(1, 1000000000))
end

function delay()
  return pause
end

function request()
  counter = counter + 1
  if mode == "deliver" then
    return wrk.format("POST", os.getenv("WH_PATH"), {
      ["Content-Type"] = "application/json",
      ["X-Hub-Signature-256"] = os.getenv("WH_SIG"),
      ["X-GitHub-Event"] = "push",
      ["X-GitHub-Delivery"] = prefix .. counter,
    }, os.getenv("WH_BODY"))
  elseif mode == "api" then
    local step = counter % 3
    if step == 1 or last == nil then
      return wrk.format("POST", "/api/v0/workflows/bench/executions", { ["Content-Type"] = "application/json" },
        '{"input":{"repo":"acme/api"}}')
    elseif step == 2 then
      return wrk.format("GET", "/api/v0/executions/" .. last)
    end
    return wrk.format("GET", "/api/v0/executions?limit=20")
  end
  return wrk.format("GET", "/healthz")
end

function response(status, headers, body)
  if status >= 400 then errors = errors + 1 end
  if mode == "api" then
    local run = body:match('"execution_id":"([^"]+)"')
    if run then last = run end
  end
end

function done(summary, latency, requests)
  local bad = 0
  for _, t in ipairs(threads) do bad = bad + t:get("errors") end
  local secs = summary.duration / 1e6
  io.write(string.format("rate=%.1f errors=%d p50=%.2f p99=%.2f\n", summary.requests / secs, bad,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000))
end
