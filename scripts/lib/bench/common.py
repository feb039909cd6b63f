"""Settings, process bookkeeping, result rows and small helpers shared by every bench item."""

import hashlib
import hmac
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request


ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
BIN = os.path.join(ROOT, "target", "release")
EXAMPLES = os.path.join(BIN, "examples")
# Another agent-monitor binary to measure in its place (A/B runs of two builds, alternating).
AGENT_MONITOR = os.environ.get("BENCH_AGENT_MONITOR") or os.path.join(BIN, "agent-monitor")
OUT_DIR = os.path.join(ROOT, "target", "bench")
RUN = os.path.join(OUT_DIR, "run")
LUA = os.path.join(ROOT, "scripts", "lib", "bench", "rpc.lua")
PIDS = os.path.join(RUN, "pids")

SHORT = "--short" in sys.argv
ONLY = None
if "--only" in sys.argv:
    ONLY = set(sys.argv[sys.argv.index("--only") + 1].split(","))

DUR = 2 if SHORT else 10            # seconds per wrk run
FSYNC_SECS = 1 if SHORT else 5      # disk ceiling, split before/after the launches
WARM_RUNS = 3 if SHORT else 20
MANY = 1000 if SHORT else 10000     # instances for the memory/start-up item
SCALE = 10000 if SHORT else 100000  # live instances for the scale item (recorded jobs)
FINDINGS = 5000 if SHORT else 50000

started = []                        # (pid, is_group) we must stop
rows = []                           # result table rows
notes = []                          # lines printed under the table


def log(msg):
    print("bench: " + msg, file=sys.stderr, flush=True)


def remember(pid, group=False):
    started.append((pid, group))
    with open(PIDS, "a") as f:
        f.write(("-%d\n" if group else "%d\n") % pid)


def stop(pid, group=False, sig=signal.SIGKILL):
    try:
        if group:
            os.killpg(pid, sig)
        else:
            os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def stop_all():
    for pid, group in reversed(started):
        stop(pid, group)
    started.clear()


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def status_kb(pid, key):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def write_exec(path, text):
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, 0o755)


def ms(us):
    return "%.2f ms" % (us / 1000.0)


def add(item, metric, value, ceiling, ratio, target, met, note=""):
    # met=None: information without a target.
    rows.append((item, metric, value, ceiling, ratio, target, "-" if met is None else "met" if met else "MISSED", note))
    log("%s | %s | %s | %s | %s" % (item, metric, value, ceiling, ratio))


def gen_sarif(path, findings, tools=3):
    with open(path, "wb") as f:
        subprocess.run([os.path.join(EXAMPLES, "gen_sarif"), str(findings), str(tools)], stdout=f, check=True)
    return path


def http_json(method, url, headers, body=None):
    req = urllib.request.Request(url, data=body, method=method, headers=headers)
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(req, timeout=30) as r:
        return json.loads(r.read() or b"null")


def _mac(key, parts):
    m = hmac.new(key, digestmod=hashlib.sha256)
    for p in parts:
        b = p.encode()
        m.update(len(b).to_bytes(8, "big"))
        m.update(b)
    return m


def make_proof(apikey, user, now=None):
    """vrun_proto::frontdoor::make_proof: `v1:<now>:<user>:<hmac>`, the proof the front door adds
    and the viewer requires for its pages."""
    t = str(int(now if now is not None else time.time()))
    key = _mac(apikey.encode(), ["vrun front door proof v1"]).digest()
    return "v1:%s:%s:%s" % (t, user, _mac(key, ["proof", t, user]).hexdigest())
