-- wrk script for scripts/bench: one fixed HTTP request (a page GET or an upload POST),
-- repeated on keep-alive connections. Used by frontdoor.py, the same request sent through
-- agent-monitor's front door and straight at the viewer.
-- Environment:
--   BENCH_METHOD      GET (default) or POST
--   BENCH_PATH        request target, e.g. /proxy-…/projects/1
--   BENCH_HEADERS     header lines "Name: value", separated by newlines
--   BENCH_BODY_FILE   file whose bytes are the request body (optional)
--   BENCH_STATUS      the status every good answer has (default 200)
--   BENCH_EXPECT      substring every good answer's body contains (optional)
-- done() prints one line: BENCH requests=.. rps=.. p50_us=.. p99_us=.. bad=.. errors=..
local method = os.getenv("BENCH_METHOD") or "GET"
local path = os.getenv("BENCH_PATH") or "/"
local want = tonumber(os.getenv("BENCH_STATUS") or "200")
local expect = os.getenv("BENCH_EXPECT")
local headers = {}
for line in (os.getenv("BENCH_HEADERS") or ""):gmatch("[^\n]+") do
  local k, v = line:match("^([^:]+):%s*(.*)$")
  if k then
    headers[k] = v
  end
end
local body = nil
local file = os.getenv("BENCH_BODY_FILE")
if file and file ~= "" then
  local f = assert(io.open(file, "rb"))
  body = f:read("*a")
  f:close()
end

local threads = {}
function setup(thread)
  table.insert(threads, thread)
end

local req
bad = 0
function init(args)
  req = wrk.format(method, path, headers, body)
end

function request()
  return req
end

function response(status, hdrs, resp)
  if status ~= want or (expect and not resp:find(expect, 1, true)) then
    bad = bad + 1
  end
end

function done(summary, latency, requests)
  local nbad = 0
  for _, t in ipairs(threads) do
    nbad = nbad + (t:get("bad") or 0)
  end
  local e = summary.errors
  io.write(string.format(
    "BENCH requests=%d duration_us=%d rps=%.1f p50_us=%d p99_us=%d bad=%d errors=%d\n",
    summary.requests, summary.duration, summary.requests / (summary.duration / 1e6),
    latency:percentile(50), latency:percentile(99), nbad,
    e.connect + e.read + e.write + e.status + e.timeout))
end
