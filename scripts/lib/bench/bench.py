#!/usr/bin/env python3
"""scripts/bench's driver: every benchmark next to a ceiling measured in the same run.

Run by scripts/bench (which builds, starts libvirtd if needed and stops it again); not meant
to be run by hand. Every process it starts is recorded in <run>/pids ("pid" or "-pgid" per
line) so that the wrapper's trap can stop them even if this driver dies; the driver stops
them itself on every normal or failing exit too.

Usage: bench.py [--short] [--only ITEMS]   (ITEMS: comma list of storm,status,durable,warm,cold,memory)
"""
import base64
import concurrent.futures
import http.client
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
import xmlrpc.client

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
BIN = os.path.join(ROOT, "target", "release")
EXAMPLES = os.path.join(BIN, "examples")
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


# ---------------------------------------------------------------------------------------
# agent-monitor, the ceiling, wrk

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


def ms(us):
    return "%.2f ms" % (us / 1000.0)


def add(item, metric, value, ceiling, ratio, target, met, note=""):
    # met=None: information without a target.
    rows.append((item, metric, value, ceiling, ratio, target, "-" if met is None else "met" if met else "MISSED", note))
    log("%s | %s | %s | %s | %s" % (item, metric, value, ceiling, ratio))


# ---------------------------------------------------------------------------------------
# 1 + 2: lock storm and status path

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


def bench_storm_and_status():
    launch_log = os.path.join(RUN, "storm-launches.log")
    # Long leases: the stand-in jobs never heartbeat, and the reaper must not end them mid-run.
    am = Daemon("storm", standin("sleep"), env={"VRUN_TEST_LAUNCH_LOG": launch_log},
                args=["--libvirt-uri", "none", "--lease-secs", "3600", "--start-grace-secs", "3600"]).start()
    try:
        auth = am.basic("launcher")
        if ONLY is None or "storm" in ONLY:
            real, ceil = bracketed("launch", auth, lambda: wrk(am.port, "launch", auth, pid=am.proc.pid))
            # Exactly once: one job per pair, one live instance per pair.
            got = wait_launches(launch_log, 500, 30)
            time.sleep(0.5)
            got = launches(launch_log)
            pairs = set()
            for _, jobfile in got:
                with open(jobfile) as f:
                    j = json.load(f)
                pairs.add((j["project"], j["viewer"]))
            live = [v for v in am.rpc().listViewers() if v["state"] not in ("stopped", "failed")]
            once = len(got) == len(pairs) == len(live) == 500
            add_http("1 lock storm", "launchViewer req/s (64 conns, 500 pairs)", real, ceil, 0.40)
            add("1 lock storm", "exactly once: jobs / distinct pairs / live", "%d / %d / %d" % (
                len(got), len(pairs), len(live)), "500", "-", "all 500", once)
        if ONLY is None or "status" in ONLY:
            admin = am.rpc()
            live = {v["project"]: v["generation"] for v in admin.listViewers()
                    if v["state"] not in ("stopped", "failed")}
            if len(live) < 500:
                # Only the status item was asked for: take the 500 locks first.
                lc = am.rpc("launcher")
                for i in range(1, 501):
                    lc.launchViewer({"project": "p%d" % i, "viewer": "CodeDX"})
                live = {v["project"]: v["generation"] for v in admin.listViewers()}

            def ready(item):
                i, (project, gen) = item
                am.rpc().setViewerState({"project": project, "viewer": "CodeDX", "generation": gen,
                                         "state": "ready", "ipaddress": "127.0.0.1:%d" % (20000 + i)})
            with concurrent.futures.ThreadPoolExecutor(16) as ex:
                list(ex.map(ready, enumerate(sorted(live.items()))))
            sample = am.rpc("launcher").isViewerAvailable("CodeDX", "p1")
            assert sample["ready"] == 1, sample
            real, ceil = bracketed("status", auth, lambda: wrk(am.port, "status", auth, pid=am.proc.pid))
            add_http("2 status path", "isViewerAvailable req/s (ready, 64 conns)", real, ceil, 0.60)
    finally:
        am.terminate()
        kill_jobs(launch_log)


# ---------------------------------------------------------------------------------------
# 3: durable first launches

def fsync_rate(directory, secs):
    out = subprocess.run([os.path.join(EXAMPLES, "fsync_rate"), directory, str(secs)],
                         capture_output=True, text=True, check=True).stdout
    return float(re.search(r"fsyncs_per_sec=(\d+)", out).group(1))


def bench_durable():
    launch_log = os.path.join(RUN, "durable-launches.log")
    am = Daemon("durable", standin("exit"), env={"VRUN_TEST_LAUNCH_LOG": launch_log},
                args=["--libvirt-uri", "none", "--start-grace-secs", "600"]).start()
    try:
        before = fsync_rate(am.state, FSYNC_SECS / 2)
        t0 = time.monotonic()
        real = wrk(am.port, "unique", am.basic("launcher"), pid=am.proc.pid)
        wrk_end = time.monotonic()
        after = fsync_rate(am.state, FSYNC_SECS / 2)
        disk = (before + after) / 2
        n = int(real["requests"])
        got = wait_launches(launch_log, n, 120)
        all_started = time.monotonic()
        backlog = max(0.0, all_started - wrk_end)
        ratio = real["rps"] / disk
        add("3 durable launches", "first launches/s (new pair each, 64 conns)", "%.0f" % real["rps"],
            "%.0f fsync/s" % disk, "%.2fx" % ratio, ">= 1x", ratio >= 1.0 and real["bad"] == 0,
            "bad %d; p50 %s p99 %s" % (real["bad"], ms(real["p50_us"]), ms(real["p99_us"])))
        add("3 durable launches", "jobs started/s (launch acknowledged -> job running)",
            "%.0f" % (len(got) / max(1e-9, all_started - t0)), "%.0f fsync/s" % disk,
            "%.2fx" % (len(got) / max(1e-9, all_started - t0) / disk), "-", None,
            "%d/%d jobs started, last %.1f s after the load ended" % (len(got), n, backlog))
    finally:
        am.terminate()
        kill_jobs(launch_log)


# ---------------------------------------------------------------------------------------
# 4: warm View

def gen_sarif(path, findings, tools=3):
    with open(path, "wb") as f:
        subprocess.run([os.path.join(EXAMPLES, "gen_sarif"), str(findings), str(tools)], stdout=f, check=True)
    return path


def http_json(method, url, headers, body=None):
    req = urllib.request.Request(url, data=body, method=method, headers=headers)
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(req, timeout=30) as r:
        return json.loads(r.read() or b"null")


def bench_warm():
    launch_log = os.path.join(RUN, "warm-launches.log")
    work = os.path.join(RUN, "hostjob")
    os.makedirs(work, exist_ok=True)
    am = Daemon("warm", os.path.join(ROOT, "launchviewer", "tests", "host-job"),
                env={"VRUN_TEST_LAUNCH_LOG": launch_log, "HOSTJOB_VIEWER": os.path.join(BIN, "viewer"),
                     "HOSTJOB_WORK": work},
                args=["--libvirt-uri", "none"]).start()
    try:
        files = os.path.join(RUN, "sarif")
        os.makedirs(files, exist_ok=True)
        # ~1 MB each (about 215 bytes per finding); distinct contents, so every push is new.
        lv_files = [gen_sarif(os.path.join(files, "lv%d.sarif" % i), 4700 + i) for i in range(WARM_RUNS + 1)]
        curl_files = [gen_sarif(os.path.join(files, "curl%d.sarif" % i), 4700 + 500 + i) for i in range(WARM_RUNS)]
        size = os.path.getsize(lv_files[1])
        env = dict(os.environ, AGENT_MONITOR_URL=am.url,
                   AGENT_MONITOR_SECRET_FILE=os.path.join(am.state, "secrets", "launcher.secret"))
        lv = [os.path.join(BIN, "launchviewer"), "--project", "warm", "--viewer", "CodeDX", "--user", "alice",
              "--package", "bench", "--wait", "120", "--results"]

        def run_lv(f):
            t = time.monotonic()
            r = subprocess.run(lv + [f], env=env, capture_output=True, text=True, timeout=180)
            took = time.monotonic() - t
            if r.returncode != 0 or not r.stdout.startswith("READY"):
                raise RuntimeError("launchviewer failed: %s %s" % (r.stdout, r.stderr))
            return took
        first = run_lv(lv_files[0])           # launches the host viewer; not measured
        av = am.rpc("launcher").isViewerAvailable("CodeDX", "warm")
        base = "http://%s/%s" % (av["address"], av["urluuid"])
        hdr = {"API-Key": av["apikey"]}
        pid = [p for p in http_json("GET", base + "/api/projects", hdr)["projects"] if p["name"] == "bench"][0]["id"]
        curl_script = (
            'j=$(curl -sSf --noproxy "*" -H "API-Key: $KEY" -F "file1=@$F" "$BASE/api/projects/$ID/analysis" '
            '| sed -n \'s/.*"jobId":"\\([0-9a-f]*\\)".*/\\1/p\'); [ -n "$j" ] || exit 1; '
            'until curl -sSf --noproxy "*" -H "API-Key: $KEY" "$BASE/api/jobs/$j" | grep -q \'"completed"\'; '
            'do sleep 0.01; done')

        def run_curl(f):
            e = dict(os.environ, KEY=av["apikey"], BASE=base, ID=str(pid), F=f)
            t = time.monotonic()
            subprocess.run(["bash", "-c", curl_script], env=e, check=True, timeout=180)
            return time.monotonic() - t

        def run_get():
            t = time.monotonic()
            subprocess.run(["curl", "-sSf", "--noproxy", "*", "-o", "/dev/null", "-H", "API-Key: " + av["apikey"],
                            base + "/api/projects"], check=True, timeout=30)
            return time.monotonic() - t
        new, bare, pushed, gets = [], [], [], []
        for i in range(WARM_RUNS):          # interleaved, so both see the same noise
            new.append(run_lv(lv_files[i + 1]))
            bare.append(run_curl(curl_files[i]))
        for i in range(WARM_RUNS):
            pushed.append(run_lv(lv_files[WARM_RUNS]))
            gets.append(run_get())
        p = lambda xs: statistics.median(xs) * 1000
        ratio = p(new) / p(bare)
        add("4 warm View", "launchviewer, new %.1f MB SARIF, p50 of %d (host viewer)" % (size / 1e6, WARM_RUNS),
            "%.0f ms" % p(new), "%.0f ms (curl upload + poll)" % p(bare), "%.2fx" % ratio, "<= 1.5x",
            ratio <= 1.5, "first (launch) %.2f s" % first)
        add("4 warm View", "launchviewer, already pushed, p50 of %d" % WARM_RUNS, "%.0f ms" % p(pushed),
            "%.0f ms (curl GET projects)" % p(gets), "%.2fx" % (p(pushed) / p(gets)), "-", True,
            "vs curl upload: %.2fx" % (p(pushed) / p(bare)))
    finally:
        am.terminate()
        kill_jobs(launch_log)


# ---------------------------------------------------------------------------------------
# 5: cold View with the real VM

TS = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+)Z")


def log_times(path, marks):
    """First time each of `marks` appears in a tracing log (Unix seconds)."""
    import datetime
    out = {}
    with open(path, errors="replace") as f:
        for line in f:
            line = re.sub(r"\x1b\[[0-9;]*m", "", line)
            m = TS.match(line)
            if not m:
                continue
            for key, needle in marks.items():
                if key not in out and needle in line:
                    ts = m.group(1)[:26]
                    out[key] = datetime.datetime.strptime(ts, "%Y-%m-%dT%H:%M:%S.%f").replace(
                        tzinfo=datetime.timezone.utc).timestamp()
    return out


def bare_boot(image):
    d = os.path.join(RUN, "bare-%d" % time.monotonic_ns())
    os.makedirs(d)
    with open(os.path.join(d, "run.json"), "w") as f:
        json.dump({"project": "p", "viewer": "CodeDX", "users": ["alice"], "apikey": "0" * 64,
                   "urluuid": "proxy-1b4e28ba-2fa1-11d2-883f-0016d3cca427", "port": 8080}, f)
    subprocess.run("tar --format=ustar -cf cfg.img run.json && truncate -s %1M cfg.img && truncate -s 64M out.img",
                   shell=True, cwd=d, check=True)
    serial = os.path.join(d, "serial.log")
    cmd = ["qemu-system-x86_64", "-machine", "q35,accel=tcg", "-m", "512", "-smp", "1", "-display", "none",
           "-monitor", "none", "-no-reboot", "-kernel", os.path.join(image, "vmlinuz"),
           "-initrd", os.path.join(image, "initrd.img"), "-append", "console=ttyS0 quiet loglevel=3 panic=1",
           "-drive", "file=cfg.img,format=raw,if=virtio", "-drive", "file=out.img,format=raw,if=virtio",
           "-netdev", "user,id=n0,hostfwd=tcp:127.0.0.1:%d-:8080" % free_port(),
           "-device", "virtio-net-pci,netdev=n0", "-serial", "file:" + serial]
    t = time.monotonic()
    p = subprocess.Popen(cmd, cwd=d, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    remember(p.pid)
    try:
        end = t + 240
        while time.monotonic() < end and p.poll() is None:
            if os.path.exists(serial) and b"VIEWERUP" in open(serial, "rb").read():
                return time.monotonic() - t
            time.sleep(0.02)
        raise RuntimeError("bare qemu did not reach VIEWERUP; see " + serial)
    finally:
        p.kill()
        p.wait()


def cold_view(am, env, project):
    """One click -> URL with a real VM; the total and its phases, then the VM stopped again."""
    try:
        click = time.time()
        t = time.monotonic()
        r = subprocess.run([os.path.join(BIN, "launchviewer"), "--project", project, "--viewer", "CodeDX",
                            "--user", "alice", "--package", "sample", "--wait", "300",
                            "--results", os.path.join(ROOT, "launchviewer", "samples", "sample.sarif")],
                           env=env, capture_output=True, text=True, timeout=360)
        total = time.monotonic() - t
        done = click + total
        if not r.stdout.startswith("READY"):
            raise RuntimeError("cold View failed: %s %s" % (r.stdout, r.stderr))
        st = am.rpc().viewerStatus({"project": project, "viewer": "CodeDX"})
        hist = {}
        for h in st["history"]:
            hist.setdefault(h["to"], h["at"])
        joblog = os.path.join(am.state, "jobs", "g%d.log" % st["generation"])
        jt = log_times(joblog, {"start": "viewer run starting", "vm": "VM started", "up": "ev=ViewerUp",
                                "ready": "viewer ready", "probe": "accelerator probed"})
        if "probe" in jt:
            notes.append("cold View: this run paid vruntask's once-per-host-boot KVM probe (in 'job start'); "
                         "run again for the steady state")
        phases = [
            ("lock (click -> launching committed)", hist["launching"] - click),
            ("job start (committed -> vruntask running)", jt["start"] - hist["launching"]),
            ("disks + define + start (-> VM started)", jt["vm"] - jt["start"]),
            ("boot (VM started -> VIEWERUP)", jt["up"] - jt["vm"]),
            ("ready reported (VIEWERUP -> ready)", hist["ready"] - jt["up"]),
            ("wait + upload + import (ready -> URL)", done - hist["ready"]),
        ]
        return total, phases
    finally:
        # Stopped before anything else is timed: an idle guest under TCG still takes CPU.
        try:
            am.rpc().abortViewer({"project": project, "viewer": "CodeDX"})
            end = time.monotonic() + 120
            while time.monotonic() < end:
                if am.rpc().viewerStatus({"project": project, "viewer": "CodeDX"})["state"] in ("stopped", "failed"):
                    break
                time.sleep(0.5)
        except Exception as e:  # noqa: BLE001 - best effort; the daemon's stop still runs
            log("stopping the cold viewer: %s" % e)


def bench_cold():
    image = os.path.join(ROOT, "target", "viewer-image")
    log("building the viewer image")
    subprocess.run([os.path.join(ROOT, "scripts", "build-viewer-image"), "--out", image], check=True,
                   stdout=subprocess.DEVNULL)
    # The runtime directory outlives the run, as /run/vrun does: it caches vruntask's
    # once-per-host-boot KVM probe (up to 8 s), which is not what a cold View costs.
    vmrun = os.path.join(OUT_DIR, "vmrun")
    for d in (RUN, os.path.join(RUN, "vmwork"), vmrun):
        os.makedirs(d, exist_ok=True)
        os.chmod(d, 0o711)
    am = Daemon("cold", os.path.join(BIN, "vruntask"),
                env={"VRUN_WORK_ROOT": os.path.join(RUN, "vmwork"), "VRUN_RUNTIME_DIR": vmrun,
                     "RUST_LOG": "info"},
                args=["--platform", image]).start()
    env = dict(os.environ, AGENT_MONITOR_URL=am.url,
               AGENT_MONITOR_SECRET_FILE=os.path.join(am.state, "secrets", "launcher.secret"))
    try:
        # Bare boots and cold Views alternate (bare, View, bare, View, ..., bare), and each View
        # is compared with the mean of the bare boots either side of it: a boot under TCG
        # varies by a few tenths of a second with the machine's load, as much as the target.
        runs = 1 if SHORT else 3
        log("bare qemu boot")
        bare = [bare_boot(image)]
        views = []
        for i in range(runs):
            log("cold View %d of %d (boots a VM)" % (i + 1, runs))
            # Unique projects: domain names must not meet other runs' or each other's.
            views.append(cold_view(am, env, "bench%dx%d" % (os.getpid(), i)))
            log("bare qemu boot")
            bare.append(bare_boot(image))
        overs = [total - (bare[i] + bare[i + 1]) / 2 for i, (total, _) in enumerate(views)]
        mid = sorted(range(runs), key=lambda i: overs[i])[runs // 2]
        total, phases = views[mid]
        bare_s = (bare[mid] + bare[mid + 1]) / 2
        for name, secs in phases:
            notes.append("cold View phase: %-44s %6.2f s" % (name, secs))
        over = overs[mid]
        add("5 cold View", "click -> URL, real VM (TCG)%s" % ("" if runs == 1 else ", median of %d" % runs),
            "%.2f s" % total, "%.2f s (bare qemu -> VIEWERUP)" % bare_s, "%+.2f s" % over, "<= +1 s", over <= 1.0,
            "; ".join("%s %.2f" % (n.split(" (")[0], s) for n, s in phases)
            + ("; all: %s" % ", ".join("%+.2f" % o for o in overs) if runs > 1 else ""))
    finally:
        am.terminate()


# ---------------------------------------------------------------------------------------
# 6: memory and start-up

def launch_many(am, n, prefix):
    auth = "Basic " + am.basic("launcher")

    def worker(k):
        c = http.client.HTTPConnection("127.0.0.1", am.port, timeout=30)
        for i in range(k, n, 16):
            body = ('<?xml version="1.0"?><methodCall><methodName>agentMonitor.launchViewer</methodName>'
                    '<params><param><value><struct><member><name>project</name><value><string>%s%d</string>'
                    '</value></member><member><name>viewer</name><value><string>CodeDX</string></value>'
                    '</member></struct></value></param></params></methodCall>' % (prefix, i))
            c.request("POST", "/RPC2", body, {"Authorization": auth, "Content-Type": "text/xml"})
            r = c.getresponse().read()
            if b"faultCode" in r:
                raise RuntimeError(r.decode())
        c.close()
    with concurrent.futures.ThreadPoolExecutor(16) as ex:
        list(ex.map(worker, range(16)))


def restart_ms(am):
    am.terminate()
    t = time.monotonic()
    am.spawn()
    while not am.try_call():
        if am.proc.poll() is not None:
            raise RuntimeError("agent-monitor exited at restart")
        if time.monotonic() - t > 60:
            raise RuntimeError("agent-monitor did not serve after restart")
        time.sleep(0.001)
    return (time.monotonic() - t) * 1000


def bench_memory():
    # Reference: an empty daemon, same binary, same run.
    empty_log = os.path.join(RUN, "empty-launches.log")
    empty = Daemon("empty", standin("sleep"), env={"VRUN_TEST_LAUNCH_LOG": empty_log},
                   args=["--libvirt-uri", "none"]).start()
    try:
        launch_many(empty, 10, "e")
        wait_launches(empty_log, 10, 30)
        empty_hwm = status_kb(empty.proc.pid, "VmHWM")
        empty_restart = statistics.median([restart_ms(empty) for _ in range(3)])
    finally:
        empty.terminate()
        kill_jobs(empty_log)

    launch_log = os.path.join(RUN, "many-launches.log")
    am = Daemon("many", standin("sleep"), env={"VRUN_TEST_LAUNCH_LOG": launch_log},
                args=["--libvirt-uri", "none", "--start-grace-secs", "3600", "--lease-secs", "3600"]).start()
    try:
        log("launching %d instances (one stand-in job each)" % MANY)
        launch_many(am, MANY, "m")
        got = wait_launches(launch_log, MANY, 300)
        time.sleep(1)
        hwm = status_kb(am.proc.pid, "VmHWM")
        threads = status_kb(am.proc.pid, "Threads")
        add("6 memory", "agent-monitor peak RSS, %d live instances + jobs" % MANY, "%.1f MB" % (hwm / 1024),
            "%.1f MB (10 instances)" % (empty_hwm / 1024), "%.1fx" % (hwm / empty_hwm), "<= 30 MB",
            hwm / 1024 <= 30, "%d jobs running; %d threads" % (len(got), threads))
        times = [restart_ms(am) for _ in range(1 if SHORT else 3)]
        restart = statistics.median(times)
        after = status_kb(am.proc.pid, "VmHWM")
        add("6 start-up", "restart to first answer, %d live instances" % MANY, "%.0f ms" % restart,
            "%.0f ms (10 instances)" % empty_restart, "+%.0f ms" % (restart - empty_restart), "<= 300 ms",
            restart <= 300, "runs: %s; peak RSS after restart %.1f MB" % (
                ", ".join("%.0f" % x for x in times), after / 1024))
    finally:
        am.terminate()
        kill_jobs(launch_log)

    # The viewer with FINDINGS findings.
    big = gen_sarif(os.path.join(RUN, "big.sarif"), FINDINGS)
    keyf = os.path.join(RUN, "viewer.key")
    with open(keyf, "w") as f:
        f.write("ab" * 32 + "\n")

    def serve(data):
        p = subprocess.Popen([os.path.join(BIN, "viewer"), "serve", "--project", "p", "--users", "alice",
                              "--apikey-file", keyf, "--data", data, "--listen", "127.0.0.1:0"],
                             stdout=subprocess.PIPE, stderr=open(os.path.join(RUN, "viewer.log"), "a"), text=True,
                             env=dict(os.environ, RUST_LOG="warn"))
        remember(p.pid)
        line = p.stdout.readline().split()
        return p, "http://%s" % line[1]

    def page(base, pid):
        req = urllib.request.Request(base + "/projects/%d" % pid, headers={"X-Swamp-User": "alice"})
        with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(req, timeout=60) as r:
            r.read()

    hdr = {"API-Key": "ab" * 32}
    empty_data = os.path.join(RUN, "viewer-empty")
    p, base = serve(empty_data)
    try:
        pid = http_json("PUT", base + "/api/projects", dict(hdr, **{"Content-Type": "application/json"}),
                        json.dumps({"name": "big"}).encode())["id"]
        page(base, pid)
        v_empty = status_kb(p.pid, "VmHWM")
    finally:
        p.terminate()
        p.wait()
    data = os.path.join(RUN, "viewer-big")
    p, base = serve(data)
    try:
        pid = http_json("PUT", base + "/api/projects", dict(hdr, **{"Content-Type": "application/json"}),
                        json.dumps({"name": "big"}).encode())["id"]
        r = subprocess.run(["curl", "-sSf", "--noproxy", "*", "-H", "API-Key: " + "ab" * 32, "-F", "file1=@" + big,
                            base + "/api/projects/%d/analysis" % pid], capture_output=True, text=True, check=True)
        job = json.loads(r.stdout)["jobId"]
        end = time.monotonic() + 300
        while time.monotonic() < end:
            st = http_json("GET", base + "/api/jobs/" + job, hdr)
            if st["status"] in ("completed", "failed"):
                break
            time.sleep(0.1)
        assert st["status"] == "completed", st
        page(base, pid)
        v_import = status_kb(p.pid, "VmHWM")
    finally:
        p.terminate()
        p.wait()
    p, base = serve(data)
    try:
        page(base, pid)
        v_loaded = status_kb(p.pid, "VmHWM")
    finally:
        p.terminate()
        p.wait()
    add("6 memory", "viewer peak RSS, %d findings, fresh serve + findings page" % FINDINGS,
        "%.1f MB" % (v_loaded / 1024), "%.1f MB (empty project)" % (v_empty / 1024),
        "%.1fx" % (v_loaded / v_empty), "<= 60 MB", v_loaded / 1024 <= 60,
        "same process that imported them: %.1f MB (%s)" % (v_import / 1024, st["message"]))


# ---------------------------------------------------------------------------------------

def table():
    head = ["item", "metric", "measured", "ceiling / reference (same run)", "ratio", "target", "", "notes"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        lines.append("| " + " | ".join(str(x) for x in r) + " |")
    return "\n".join(lines)


def main():
    shutil.rmtree(RUN, ignore_errors=True)
    os.makedirs(RUN)
    open(PIDS, "w").close()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    items = [("storm", bench_storm_and_status), ("durable", bench_durable), ("warm", bench_warm),
             ("cold", bench_cold), ("memory", bench_memory)]
    failures = []
    t = time.monotonic()
    try:
        for name, fn in items:
            wanted = ONLY is None or name in ONLY or (name == "storm" and "status" in ONLY)
            if not wanted:
                continue
            log("== %s" % name)
            try:
                fn()
            except Exception as e:  # noqa: BLE001 - one item failing must not lose the others
                log("%s failed: %s" % (name, e))
                failures.append("%s: %s" % (name, e))
            finally:
                stop_all()
    finally:
        stop_all()
    header = "vrun benchmarks (%s, %s, %d cores, load average %s), %.0f s\n\n" % (
        "short" if SHORT else "full", time.strftime("%Y-%m-%d %H:%M:%S"), os.cpu_count(),
        " ".join(open("/proc/loadavg").read().split()[:3]), time.monotonic() - t)
    text = header + table() + "\n"
    if notes:
        text += "\n```\n" + "\n".join(notes) + "\n```\n"
    if failures:
        text += "\nFailed items:\n" + "".join("- %s\n" % f for f in failures)
    with open(os.path.join(OUT_DIR, "results.md"), "w") as f:
        f.write(text)
    sys.stdout.write(text)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
