-- wrk script: signed deliveries with a unique delivery ID per request (so dedupe never answers
-- "duplicate"). The body and its GitHub-style signature are fixed per run and passed in the
-- environment by scripts/bench-webhooks.sh: WH_PATH, WH_BODY, WH_SIG, WH_EVENT, WH_EXPECT.
local path = os.getenv("WH_PATH")
local body = os.getenv("WH_BODY")
local sig = os.getenv("WH_SIG")
local event = os.getenv("WH_EVENT") or "push"
local expect = tonumber(os.getenv("WH_EXPECT") or "202")
local threads = {}

function setup(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end

function init(args)
  counter = 0
  ok = 0
  other = 0
  prefix = string.format("%d-%d-%d-", os.time(), id, math.random(1, 1000000000))
end

function request()
  counter = counter + 1
  local headers = {
    ["Content-Type"] = "application/json",
    ["X-Hub-Signature-256"] = sig,
    ["X-GitHub-Event"] = event,
    ["X-GitHub-Delivery"] = prefix .. counter,
  }
  return wrk.format("POST", path, headers, body)
end

function response(status, headers, body)
  if status == expect then ok = ok + 1 else other = other + 1 end
end

function done(summary, latency, requests)
  local good, bad = 0, 0
  for _, t in ipairs(threads) do
    good = good + t:get("ok")
    bad = bad + t:get("other")
  end
  local secs = summary.duration / 1e6
  io.write(string.format("expected=%d/s unexpected=%d p50=%.2fms p99=%.2fms requests=%d seconds=%.1f\n",
    math.floor(good / secs), bad, latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    summary.requests, secs))
end
