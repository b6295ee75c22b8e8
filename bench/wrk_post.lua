-- wrk script of the bench: POST a JSON body, rotate the API keys, print the figures as JSON.
-- Environment: BENCH_PATH (path and query), BENCH_BODY_FILE (the body), BENCH_API_KEYS
-- (comma-separated; may be empty for the direct upstream, which ignores it).

local path = os.getenv("BENCH_PATH") or "/v1/messages"
local body_file = assert(io.open(os.getenv("BENCH_BODY_FILE"), "rb"))
local body = body_file:read("*a")
body_file:close()

local keys = {}
for key in string.gmatch(os.getenv("BENCH_API_KEYS") or "", "[^,]+") do
  keys[#keys + 1] = key
end

local requests = {}
local next_request = 1

-- Each thread builds its requests once; request() only hands them out in turn.
function init(args)
  local headers = {
    ["content-type"] = "application/json",
    ["anthropic-version"] = "2023-06-01",
  }
  if #keys == 0 then
    requests[1] = wrk.format("POST", path, headers, body)
  else
    for i, key in ipairs(keys) do
      headers["x-api-key"] = key
      requests[i] = wrk.format("POST", path, headers, body)
    end
  end
end

function request()
  local built = requests[next_request]
  next_request = next_request % #requests + 1
  return built
end

function done(summary, latency, requests)
  local errors = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests":%d,"duration_us":%d,"bytes":%d,' ..
    '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
    '"latency_us":{"min":%d,"mean":%.1f,"p50":%d,"p90":%d,"p99":%d,"p999":%d,"max":%d}}\n',
    summary.requests, summary.duration, summary.bytes,
    errors.connect, errors.read, errors.write, errors.status, errors.timeout,
    latency.min, latency.mean, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency:percentile(99.9), latency.max))
end
