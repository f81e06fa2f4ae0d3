-- wrk script for POST /v1/tickets (bench_service.py --wrk): every request a distinct body
-- and its own Idempotency-Key, so no replay or memo inflates the rate.
--   wrk -t2 -c4 -d20s -s bench/wrk_intake.lua http://127.0.0.1:PORT -- BODIES.jsonl API_KEY RUN [PATH]
-- BODIES.jsonl: one JSON body a line with the placeholder @REF@ in its text (made unique here).
-- PATH (default /v1/tickets) posts the bodies elsewhere, e.g. /v1/classify?kb=0; only ticket
-- intake takes an Idempotency-Key.
-- Each wrk thread has its own Lua state and counter: thread t sends bodies t, t + STRIDE,
-- t + 2 STRIDE, ... so two threads never send the same text at the same moment (they did:
-- every thread walked the list from the top, the same tickets twice, near-duplicates of each
-- other). Up to STRIDE threads.
local STRIDE = 16
local counter = 0
local threads = {}

function setup(thread)
  thread:set("tid", #threads + 1)
  table.insert(threads, thread)
end

function init(args)
  bodies = {}
  for line in io.lines(args[1]) do
    bodies[#bodies + 1] = line
  end
  headers = {
    ["Content-Type"] = "application/json",
    ["Authorization"] = "Bearer " .. args[2],
  }
  run = args[3]
  path = args[4] or "/v1/tickets"
end

function request()
  counter = counter + 1
  local ref = run .. "-" .. tid .. "-" .. counter
  local body = bodies[((counter - 1) * STRIDE + tid - 1) % #bodies + 1]:gsub("@REF@", ref)
  if path == "/v1/tickets" then
    headers["Idempotency-Key"] = "wrk-" .. ref
  end
  return wrk.format("POST", path, headers, body)
end

function done(summary, latency, requests)
  -- one machine-readable line for bench_service.py (times in ms)
  io.write(string.format(
    "WRK requests=%d seconds=%.3f p50=%.3f p99=%.3f max=%.3f non2xx=%d errors=%d\n",
    summary.requests, summary.duration / 1e6, latency:percentile(50) / 1000,
    latency:percentile(99) / 1000, latency.max / 1000, summary.errors.status,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
