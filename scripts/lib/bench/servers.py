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

from common import AGENT_MONITOR, DUR, EXAMPLES, LUA, RUN, add, free_port, log, ms, remember, stop, write_exec


class Daemon:
    def __init__(self, name, job, env=None, args=(), keep_state=False, binary=None):
        self.binary = binary or AGENT_MONITOR
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


NGINX_CONF = """# scripts/bench's second HTTP ceiling (written by servers.py; never the system nginx).
daemon off;
master_process on;
worker_processes 2;
pid %(dir)s/nginx.pid;
error_log %(dir)s/error.log warn;
events { worker_connections 1024; }
http {
    access_log off;
    server_tokens off;
    client_body_temp_path %(dir)s/body;
    proxy_temp_path %(dir)s/proxy;
    fastcgi_temp_path %(dir)s/fastcgi;
    uwsgi_temp_path %(dir)s/uwsgi;
    scgi_temp_path %(dir)s/scgi;
    # hyper closes no keep-alive connection after N requests; nor should this (default 1000).
    keepalive_requests 100000000;
    keepalive_timeout 75s;
    server {
        listen 127.0.0.1:%(port)d;
        location = /RPC2 {
            limit_except POST { deny all; }
            # The body is read whole from the connection (into memory, never a temp file)
            # and dropped, so each keep-alive connection's next request starts where it
            # should; wrk's "bad" and "errors" stay 0 (checked by nginx_wrk).
            client_body_buffer_size 16k;
            client_max_body_size 16k;
            default_type text/xml;
            return 200 '%(body)s';
        }
    }
}
"""


def nginx_start():
    """nginx answering every POST /RPC2 with the axum ceiling's bytes: a ceiling written in C.
    Its own config, pid file and temp dirs under the run directory, a free port on 127.0.0.1,
    in its own process group (master and workers are stopped together)."""
    body = subprocess.run([os.path.join(EXAMPLES, "ceiling"), "--print-body"], capture_output=True,
                          text=True, check=True).stdout
    assert "'" not in body and "\\" not in body
    port = free_port()
    d = os.path.join(RUN, "nginx-%d" % port)
    os.makedirs(d)
    conf = os.path.join(d, "nginx.conf")
    with open(conf, "w") as f:
        f.write(NGINX_CONF % {"dir": d, "port": port, "body": body})
    err = open(os.path.join(d, "stderr.log"), "a")
    p = subprocess.Popen(["nginx", "-p", d, "-e", os.path.join(d, "error.log"), "-c", conf],
                         stdin=subprocess.DEVNULL, stdout=err, stderr=err, start_new_session=True)
    remember(p.pid, group=True)
    end = time.monotonic() + 10
    while True:
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            c.request("POST", "/RPC2", "<methodCall/>", {"Content-Type": "text/xml"})
            r = c.getresponse()
            got = r.read().decode()
            c.close()
            if r.status != 200 or got != body or r.getheader("Content-Type") != "text/xml":
                raise RuntimeError("nginx ceiling answered %d %r" % (r.status, got[:80]))
            return p, port
        except OSError:
            if p.poll() is not None or time.monotonic() > end:
                raise RuntimeError("nginx ceiling did not start; see %s" % d)
            time.sleep(0.02)


def cpu_secs(pid, tree=False):
    """User + system CPU time a process has used (seconds); with `tree`, plus that of its
    live children (nginx's workers; not agent-monitor's jobs)."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    t = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return t + (sum(cpu_secs(c) for c in children(pid)) if tree else 0)


def children(pid):
    with open("/proc/%d/task/%d/children" % (pid, pid)) as f:
        return [int(c) for c in f.read().split()]


def wrk_result(out):
    """The figures rpc.lua and http.lua print on their `BENCH k=v ...` line."""
    m = re.search(r"^BENCH (.*)$", out, re.M)
    if not m:
        raise RuntimeError("wrk printed no result:\n" + out)
    return {k: float(v) for k, v in (kv.split("=") for kv in m.group(1).split())}


def wrk(port, mode, auth, secs=None, pairs=500, expect=None, conns=64, pid=None, tree=False):
    """wrk's numbers; with `pid`, also the server's CPU time per request (cpu_us), which is
    far less sensitive to other load on the machine than requests/s (with `tree`, of the
    process and its children: nginx's master and workers)."""
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
        who = ",".join(str(p) for p in [pid] + (children(pid) if tree else []))
        perf = subprocess.Popen(["perf", "record", "-F", "999"] + graph + ["-p", who, "-o", data],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        remember(perf.pid)
    cpu0 = cpu_secs(pid, tree) if pid else 0
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=secs + 60).stdout
    cpu1 = cpu_secs(pid, tree) if pid else 0
    if perf:
        perf.send_signal(signal.SIGINT)
        perf.wait(60)
    r = wrk_result(out)
    r["cpu_us"] = (cpu1 - cpu0) * 1e6 / max(1, r["requests"])
    return r


def ceiling_wrk(mode, auth, pairs=500, server="axum"):
    """A trivial responder under the same load: the axum one or nginx. An nginx run that saw
    socket errors (wrk's connect/read/write/timeout counts; 52 in 1.2 million requests once,
    2026-12-03, with nothing in nginx's error log) is run once more, on a fresh nginx; a second
    such run fails the item, as does any wrong answer."""
    try:
        return ceiling_wrk_once(mode, auth, pairs, server)
    except SocketErrors as e:
        log("%s; running that ceiling once more" % e)
        return ceiling_wrk_once(mode, auth, pairs, server)


class SocketErrors(RuntimeError):
    pass


def ceiling_wrk_once(mode, auth, pairs, server):
    p, port = nginx_start() if server == "nginx" else ceiling_start()
    try:
        # nginx's workers do the work; the master only watches them.
        r = wrk(port, mode, auth, pairs=pairs, pid=p.pid, tree=server == "nginx")
        if server == "nginx":
            if r["bad"]:
                raise RuntimeError("nginx ceiling: %d bad answers" % r["bad"])
            if r["errors"]:
                raise SocketErrors("nginx ceiling: %d socket errors in %d requests" % (r["errors"], r["requests"]))
        return r
    finally:
        if server == "nginx":
            p.send_signal(signal.SIGQUIT)
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                stop(p.pid, group=True)
                p.wait()
        else:
            p.kill()
            p.wait()


def bracketed(mode, auth, run_real):
    """The real run between two runs of each ceiling (axum, nginx, real, nginx, axum). Each
    ceiling's figures are the mean of its two runs, so that load arriving or leaving during
    the item moves both sides alike (one ceiling run before the real one varied by a quarter
    between otherwise equal runs)."""
    before = {s: ceiling_wrk(mode, auth, server=s) for s in ("axum", "nginx")}
    real = run_real()
    after = {s: ceiling_wrk(mode, auth, server=s) for s in ("nginx", "axum")}
    ceils = {}
    for s in ("axum", "nginx"):
        b, a = before[s], after[s]
        c = {k: (b[k] + a[k]) / 2 for k in b}
        c["runs"] = "%s runs %.0f and %.0f req/s" % (s, b["rps"], a["rps"])
        ceils[s] = c
    return real, ceils


def add_http(item, metric, real, ceils, share, share_nginx):
    """The rows of a wrk item: req/s against each ceiling's (the targets), CPU per call and
    latency against each (information)."""
    for name, ceil, want in (("axum", ceils["axum"], share), ("nginx", ceils["nginx"], share_nginx)):
        ratio = real["rps"] / ceil["rps"]
        add(item, "%s, vs %s" % (metric, name), "%.0f" % real["rps"], "%.0f" % ceil["rps"],
            "%.0f%%" % (100 * ratio), ">= %.0f%%" % (100 * want), ratio >= want and real["bad"] == 0,
            "bad answers %d; %s" % (real["bad"], ceil["runs"]))
    for name, ceil in (("axum", ceils["axum"]), ("nginx", ceils["nginx"])):
        add(item, "server CPU per call, vs %s" % name, "%.1f us" % real["cpu_us"], "%.1f us" % ceil["cpu_us"],
            "%.1fx" % (real["cpu_us"] / ceil["cpu_us"]), "-", None, "noise-resistant view of the same run")
    for name, ceil in (("axum", ceils["axum"]), ("nginx", ceils["nginx"])):
        add(item, "p50 / p99, vs %s" % name, "%s / %s" % (ms(real["p50_us"]), ms(real["p99_us"])),
            "%s / %s" % (ms(ceil["p50_us"]), ms(ceil["p99_us"])), "%.1fx / %.1fx" % (
                real["p50_us"] / ceil["p50_us"], real["p99_us"] / ceil["p99_us"]), "-", None)
