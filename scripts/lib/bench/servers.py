"""agent-monitor as a bench item runs it, the ceiling server, stand-in jobs, and wrk."""

import base64
import http.client
import os
import re
import shutil
import signal
import subprocess
import time
import xmlrpc.client

from common import BIN, DUR, EXAMPLES, LUA, RUN, add, free_port, log, ms, remember, stop, write_exec


class Daemon:
    def __init__(self, name, job, env=None, args=(), keep_state=False, binary=None):
        self.binary = binary or os.path.join(BIN, "agent-monitor")
        self.name = name
        self.state = os.path.join(RUN, name)
        if not keep_state:
            shutil.rmtree(self.state, ignore_errors=True)
        self.job = job
        self.env = dict(os.environ, RUST_LOG="warn")
        self.env.update(env or {})
        self.args = list(args)
        self.port = free_port()
        self.url = "http://127.0.0.1:%d/RPC2" % self.port
        self.proc = None

    def spawn(self):
        cmd = [self.binary, "serve", "--state-dir", self.state,
               "--listen", "127.0.0.1:%d" % self.port, "--job-command", self.job] + self.args
        err = open(os.path.join(RUN, self.name + ".log"), "a")
        self.proc = subprocess.Popen(cmd, env=self.env, stdin=subprocess.DEVNULL, stdout=err, stderr=err)
        remember(self.proc.pid)
        return self.proc

    def start(self, within=30):
        self.spawn()
        self.wait_serving(within)
        return self

    def secret(self, role):
        with open(os.path.join(self.state, "secrets", role + ".secret")) as f:
            return f.read().strip()

    def basic(self, role):
        return base64.b64encode(("%s:%s" % (role, self.secret(role))).encode()).decode()

    def rpc(self, role="admin"):
        url = "http://%s:%s@127.0.0.1:%d/RPC2" % (role, self.secret(role), self.port)
        return xmlrpc.client.ServerProxy(url).agentMonitor

    def try_call(self):
        """One isViewerAvailable over a fresh connection; True when answered (not a fault)."""
        try:
            body = ('<?xml version="1.0"?><methodCall><methodName>agentMonitor.isViewerAvailable'
                    '</methodName><params><param><value><string>CodeDX</string></value></param>'
                    '<param><value><string>p1</string></value></param></params></methodCall>')
            c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
            c.request("POST", "/RPC2", body, {"Authorization": "Basic " + self.basic("launcher"),
                                               "Content-Type": "text/xml"})
            r = c.getresponse()
            ok = r.status == 200 and b"faultCode" not in r.read()
            c.close()
            return ok
        except (OSError, http.client.HTTPException):
            return False

    def wait_serving(self, within=30):
        end = time.monotonic() + within
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise RuntimeError("agent-monitor %s exited; see %s.log" % (self.name, self.name))
            if os.path.exists(os.path.join(self.state, "secrets", "launcher.secret")) and self.try_call():
                return
            time.sleep(0.005)
        raise RuntimeError("agent-monitor %s did not serve within %d s" % (self.name, within))

    def terminate(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def launches(logfile):
    try:
        with open(logfile) as f:
            return [l.split(" ", 1) for l in f.read().splitlines() if " " in l]
    except FileNotFoundError:
        return []


def wait_launches(logfile, n, within):
    end = time.monotonic() + within
    while time.monotonic() < end:
        got = launches(logfile)
        if len(got) >= n:
            return got
        time.sleep(0.05)
    return launches(logfile)


def kill_jobs(logfile):
    # Each job runs in its own process group, led by the job: its pid is the group id.
    for pid, _ in launches(logfile):
        stop(int(pid), group=True)


def standin(kind):
    """The stand-in job command: record the launch, then live like a job (sleep) or end."""
    path = os.path.join(RUN, "job-" + kind)
    tail = "exec sleep 900\n" if kind == "sleep" else "exit 0\n"
    write_exec(path, '#!/bin/sh\n# $1 = run, $2 = job file\necho "$$ $2" >> "$VRUN_TEST_LAUNCH_LOG"\n' + tail)
    return path


def ceiling_start():
    port = free_port()
    p = subprocess.Popen([os.path.join(EXAMPLES, "ceiling"), "127.0.0.1:%d" % port],
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    remember(p.pid)
    p.stdout.readline()
    return p, port


def cpu_secs(pid):
    """User + system CPU time a process has used (seconds)."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wrk(port, mode, auth, secs=None, pairs=500, expect=None, conns=64, pid=None):
    """wrk's numbers; with `pid`, also the server's CPU time per request (cpu_us), which is
    far less sensitive to other load on the machine than requests/s."""
    env = dict(os.environ, BENCH_MODE=mode, BENCH_AUTH=auth, BENCH_PAIRS=str(pairs))
    if expect:
        env["BENCH_EXPECT"] = expect
    secs = secs or DUR
    cmd = ["wrk", "-t2", "-c%d" % conns, "-d%ds" % secs, "--timeout", "10s", "-s", LUA,
           "http://127.0.0.1:%d/RPC2" % port]
    perf = None
    if pid and os.environ.get("BENCH_PERF") and not shutil.which("perf"):
        log("BENCH_PERF: no perf on this machine (Debian: apt-get install linux-perf); not profiling")
    elif pid and os.environ.get("BENCH_PERF"):
        # BENCH_PERF=1 (or =dwarf: exact call graphs, bigger files) scripts/bench --only status:
        # a profile of the server under this load, for
        # `perf report -i target/bench/run/<mode>-<pid>.perf.data`.
        data = os.path.join(RUN, "%s-%d.perf.data" % (mode, pid))
        graph = ["--call-graph", "dwarf"] if os.environ["BENCH_PERF"] == "dwarf" else ["-g"]
        perf = subprocess.Popen(["perf", "record", "-F", "999"] + graph + ["-p", str(pid), "-o", data],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        remember(perf.pid)
    cpu0 = cpu_secs(pid) if pid else 0
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=secs + 60).stdout
    cpu1 = cpu_secs(pid) if pid else 0
    if perf:
        perf.send_signal(signal.SIGINT)
        perf.wait(60)
    m = re.search(r"^BENCH (.*)$", out, re.M)
    if not m:
        raise RuntimeError("wrk printed no result:\n" + out)
    r = {k: float(v) for k, v in (kv.split("=") for kv in m.group(1).split())}
    r["cpu_us"] = (cpu1 - cpu0) * 1e6 / max(1, r["requests"])
    return r


def ceiling_wrk(mode, auth, pairs=500):
    """The trivial responder under the same load."""
    p, port = ceiling_start()
    try:
        return wrk(port, mode, auth, pairs=pairs, pid=p.pid)
    finally:
        p.kill()
        p.wait()


def bracketed(mode, auth, run_real):
    """The real run between two ceiling runs. The ceiling's figures are the mean of both, so
    that load arriving or leaving during the item moves both sides alike (one ceiling run
    before the real one varied by a quarter between otherwise equal runs)."""
    before = ceiling_wrk(mode, auth)
    real = run_real()
    after = ceiling_wrk(mode, auth)
    ceil = {k: (before[k] + after[k]) / 2 for k in before}
    ceil["runs"] = "ceiling runs %.0f and %.0f req/s" % (before["rps"], after["rps"])
    return real, ceil


def add_http(item, metric, real, ceil, share):
    """The three rows of a wrk item: req/s against the ceiling's (the target), CPU per call
    and latency (information)."""
    ratio = real["rps"] / ceil["rps"]
    add(item, metric, "%.0f" % real["rps"], "%.0f" % ceil["rps"], "%.0f%%" % (100 * ratio),
        ">= %.0f%%" % (100 * share), ratio >= share and real["bad"] == 0,
        "bad answers %d; %s" % (real["bad"], ceil["runs"]))
    add(item, "server CPU per call", "%.0f us" % real["cpu_us"], "%.0f us" % ceil["cpu_us"],
        "%.1fx" % (real["cpu_us"] / ceil["cpu_us"]), "-", None, "noise-resistant view of the same run")
    add(item, "p50 / p99", "%s / %s" % (ms(real["p50_us"]), ms(real["p99_us"])),
        "%s / %s" % (ms(ceil["p50_us"]), ms(ceil["p99_us"])), "%.1fx / %.1fx" % (
            real["p50_us"] / ceil["p50_us"], real["p99_us"] / ceil["p99_us"]), "-", None)
