-- wrk script of bench.saturation: POST /v1/fds/evaluate with a transaction id never sent before.
--
--   wrk -t T -c C -d S -s bench/evaluate.lua URL -- BODIES_FILE RUN_PREFIX
--
-- BODIES_FILE holds one transaction a line, as JSON without its opening brace and without a
-- transaction_id (the generator's transactions: real users, cards, devices and amounts); each
-- request takes the next line and puts "<RUN_PREFIX>-<thread>-<n>" in front as its id, so no
-- request is a replay of an earlier one (a replay is answered from the stored evaluation).
-- done() prints one JSON line that bench.saturation reads.

local threads = {}
local counter = 0

function setup(thread)
  counter = counter + 1
  thread:set("thread_number", counter)
  table.insert(threads, thread)
end

function init(args)
  bodies = {}
  for line in io.lines(args[1]) do
    bodies[#bodies + 1] = line
  end
  prefix = args[2] .. "-" .. tostring(thread_number) .. "-"
  sent = 0
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
end

function request()
  sent = sent + 1
  local rest = bodies[(sent % #bodies) + 1]
  local body = '{"transaction_id":"' .. prefix .. sent .. '",' .. rest
  return wrk.format(nil, nil, nil, body)
end

local function count(name)
  local total = 0
  for _, thread in ipairs(threads) do
    total = total + (thread:get(name) or 0)
  end
  return total
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests":%d,"duration_us":%d,"sent":%d,"errors":{"connect":%d,"read":%d,"write":%d,' ..
    '"status":%d,"timeout":%d},"latency_us":{"p50":%d,"p95":%d,"p99":%d,"max":%d}}\n',
    summary.requests, summary.duration, count("sent"), e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(95), latency:percentile(99), latency.max))
end
