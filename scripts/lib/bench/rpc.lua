-- wrk script for scripts/bench: XML-RPC calls to POST /RPC2 on keep-alive connections.
-- Environment:
--   BENCH_AUTH    base64 of "user:secret" (sent as HTTP Basic)
--   BENCH_MODE    launch  launchViewer on a random one of BENCH_PAIRS pairs
--                 status  isViewerAvailable on a random one of BENCH_PAIRS pairs
--                 unique  launchViewer on a new pair every request (first launches)
--                 fill    launchViewer on p1..pBENCH_PAIRS once each, split among the threads
--                         (BENCH_THREADS, default 2), then again on each thread's first pair (filling)
--   BENCH_PAIRS   number of pairs (default 500), named p1..pN, viewer CodeDX
--   BENCH_EXPECT  substring every good answer contains (optional)
-- A good answer is HTTP 200 without an XML-RPC fault (and with BENCH_EXPECT); the rest are
-- counted as "bad". done() prints one line: BENCH requests=.. rps=.. p50_us=.. p99_us=.. bad=..
local mode = os.getenv("BENCH_MODE") or "launch"
local npairs = tonumber(os.getenv("BENCH_PAIRS") or "500")
local expect = os.getenv("BENCH_EXPECT")
local headers = {
  ["Content-Type"] = "text/xml",
  ["Authorization"] = "Basic " .. (os.getenv("BENCH_AUTH") or ""),
}

local function launch_body(project)
  return '<?xml version="1.0"?><methodCall><methodName>agentMonitor.launchViewer</methodName>'
    .. '<params><param><value><struct>'
    .. '<member><name>project</name><value><string>' .. project .. '</string></value></member>'
    .. '<member><name>viewer</name><value><string>CodeDX</string></value></member>'
    .. '</struct></value></param></params></methodCall>'
end

local function status_body(project)
  return '<?xml version="1.0"?><methodCall><methodName>agentMonitor.isViewerAvailable</methodName>'
    .. '<params><param><value><string>CodeDX</string></value></param>'
    .. '<param><value><string>' .. project .. '</string></value></param></params></methodCall>'
end

local threads = {}
function setup(thread)
  thread:set("tid", #threads + 1)
  table.insert(threads, thread)
end

local reqs = {}
local counter = 0
bad = 0
function init(args)
  math.randomseed(os.time() * 100 + (tid or 0))
  if mode ~= "unique" and mode ~= "fill" then
    local make = (mode == "status") and status_body or launch_body
    for i = 1, npairs do
      reqs[i] = wrk.format("POST", "/RPC2", headers, make("p" .. i))
    end
  end
end

local stride = tonumber(os.getenv("BENCH_THREADS") or "2")
function request()
  if mode == "fill" then
    local i = (tid or 1) + stride * counter
    counter = counter + 1
    if i <= npairs then
      return wrk.format("POST", "/RPC2", headers, launch_body("p" .. i))
    end
    -- Done: launch this thread's first pair again (held: answered at once). wrk may build
    -- one request it never sends, so each thread's first pair is also asked for last.
    return wrk.format("POST", "/RPC2", headers, launch_body("p" .. (tid or 1)))
  end
  if mode == "unique" then
    counter = counter + 1
    return wrk.format("POST", "/RPC2", headers, launch_body("u" .. tid .. "x" .. counter))
  end
  return reqs[math.random(npairs)]
end

function response(status, hdrs, body)
  if status ~= 200 or body:find("faultCode", 1, true) or (expect and not body:find(expect, 1, true)) then
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
