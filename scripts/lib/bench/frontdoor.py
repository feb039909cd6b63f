"""Item 7: the front door (agent-monitor's browser-facing proxy, docs/frontdoor.md) against
straight at the viewer, in the same run.

Set up without a VM, like the warm item: agent-monitor with `--front-door-listen` runs
launchviewer/tests/host-job as its job command, which runs the real `viewer` on the host.
launchviewer (`--user alice`) pushes a project of a few thousand findings and prints the
login link; the link is opened like a browser does (303 + session cookie), and that cookie
is what every request through the door carries.

Straight at the viewer, a page needs the proof the front door would add. This module makes
it itself, the way vrun_proto::frontdoor::make_proof does (HMAC-SHA-256 under a key derived
from the viewer's API key, over the time and the user; the same helper viewer/tests use),
and checks that the viewer accepts it before measuring. A fresh proof is made for every wrk
run (the viewer accepts one for 300 s).

Rows:
- findings page (`/<urluuid>/projects/<id>`, what the printed link opens): sequential
  latency p50/p99 (one keep-alive connection each way, alternating request by request, so
  both sides see the same load at every moment) and throughput (wrk, 4 connections:
  direct, proxied, direct, ..., direct, three rounds (one in --short), each proxied run
  against the mean of the direct runs either side; the median round counts).
- 1 MB upload (`POST /<urluuid>/api/projects/<id>/analysis` with `API-Key`, the push
  launchviewer makes and the door forwards without a session): the same two. The part is a
  generated 1 MB SARIF file with its first byte changed, so the viewer stores it and answers
  202 as for any upload, while its background import fails at once instead of loading the
  machine for seconds after each request.
- agent-monitor's peak RSS rise while a 60 MB and a 6 MB upload stream through the door.
"""

import http.client
import os
import re
import shutil
import signal
import statistics
import subprocess
import threading
import time
import urllib.error
import urllib.request

from common import BIN, DUR, ROOT, RUN, SHORT, add, free_port, gen_sarif, log, make_proof, ms, remember, status_kb
from servers import Daemon, cpu_secs, kill_jobs, wrk_result

LUA = os.path.join(ROOT, "scripts", "lib", "bench", "http.lua")
USER = "alice"
FINDINGS = 5000                     # the project's findings ("a few thousand", ~1 MB SARIF)
UPLOAD_FINDINGS = 4700              # ~1 MB SARIF for the upload rows
PAGE_SEQ = 30 if SHORT else 300    # sequential requests each way (pages)
UPLOAD_SEQ = 20 if SHORT else 150   # sequential requests each way (1 MB uploads)
TPUT_CONNS = 4                      # "a few connections"
RSS_LIMIT_MIB = 8                   # bounded: far below the upload's size, whatever it is
ROUNDS = 1 if SHORT else 3          # proxied runs, each between two direct runs
RUN_SECS = DUR if SHORT else 4      # seconds per wrk run


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *a, **k):
        return None


def fetch(url, headers=None, method="GET", body=None):
    """(status, headers, body) without following redirects or using a proxy."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}), NoRedirect)
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with opener.open(req, timeout=60) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


def viewer_pid(port):
    """The host viewer listening on `port` (host-job's child)."""
    want = ("127.0.0.1:%d" % port).encode()
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/cmdline" % d, "rb") as f:
                args = f.read().split(b"\0")
        except OSError:
            continue
        if args and os.path.basename(args[0]) == b"viewer" and want in args:
            return int(d)
    return None


def run_wrk(port, conns, secs, path, headers, status, method="GET", body_file=None, expect=None, pids=(),
            profile=None):
    """wrk's numbers, and the CPU time per request of each of `pids`. With BENCH_PERF set
    and `profile` (a name), also a perf profile of pids[0] (agent-monitor) under this load:
    `perf report -i target/bench/run/frontdoor-<profile>.perf.data`."""
    env = dict(os.environ, BENCH_METHOD=method, BENCH_PATH=path, BENCH_STATUS=str(status),
               BENCH_HEADERS="\n".join("%s: %s" % kv for kv in headers.items()), BENCH_BODY_FILE=body_file or "")
    if expect:
        env["BENCH_EXPECT"] = expect
    threads = min(2, conns)
    cmd = ["wrk", "-t%d" % threads, "-c%d" % conns, "-d%ds" % secs, "--timeout", "10s", "-s", LUA,
           "http://127.0.0.1:%d%s" % (port, path)]
    perf = None
    if profile and pids and os.environ.get("BENCH_PERF") and shutil.which("perf"):
        data = os.path.join(RUN, "frontdoor-%s.perf.data" % profile)
        graph = ["--call-graph", "dwarf"] if os.environ["BENCH_PERF"] == "dwarf" else ["-g"]
        perf = subprocess.Popen(["perf", "record", "-F", "999"] + graph + ["-p", str(pids[0]), "-o", data],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        remember(perf.pid)
    cpu0 = [cpu_secs(p) for p in pids]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=secs + 60).stdout
    cpu1 = [cpu_secs(p) for p in pids]
    if perf:
        perf.send_signal(signal.SIGINT)
        perf.wait(60)
    r = wrk_result(out)
    r["cpu_us"] = [(b - a) * 1e6 / max(1, r["requests"]) for a, b in zip(cpu0, cpu1)]
    if r["bad"] or r["errors"]:
        log("frontdoor: %s %s: %d bad answers, %d errors" % (method, path, r["bad"], r["errors"]))
    return r


def interleaved(direct, proxied):
    """direct, proxied, direct, proxied, ..., direct: each proxied run is compared with the
    mean of the direct runs either side of it, and the median of those rounds counts, so
    that load arriving or leaving during one round moves one ratio, not the result (with a
    single bracket, two direct runs of one upload row differed 26 against 67 req/s at load 16).
    Returns [(proxied, direct mean)] per round."""
    ds = [direct()]
    rounds = []
    for _ in range(ROUNDS):
        p = proxied()
        ds.append(direct())
        a, b = ds[-2], ds[-1]
        d = {k: (a[k] + b[k]) / 2 for k in ("rps", "p50_us", "p99_us", "bad", "errors")}
        d["cpu_us"] = [(x + y) / 2 for x, y in zip(a["cpu_us"], b["cpu_us"])]
        rounds.append((p, d))
    return rounds


def pct(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


def alternate(n, direct, proxied):
    """Sequential latency: `n` requests each way on one keep-alive connection per side,
    alternating request by request, so both see the same load at every moment. `direct`
    and `proxied` send one request and check its answer. Returns the seconds of each."""
    td, tp = [], []
    for _ in range(n):
        for send, times in ((direct, td), (proxied, tp)):
            t = time.perf_counter()
            send()
            times.append(time.perf_counter() - t)
    return td, tp


def keepalive(port):
    return http.client.HTTPConnection("127.0.0.1", port, timeout=60)


def one(conn, method, path, headers, body, status, expect):
    conn.request(method, path, body, headers)
    r = conn.getresponse()
    data = r.read()
    if r.status != status or expect not in data:
        raise RuntimeError("%s %s answered %d: %r" % (method, path, r.status, data[:300]))


def median_of(rounds, side, key):
    return statistics.median(r[side][key] for r in rounds)


def cpu_note(rounds):
    """CPU per request, the noise-resistant view: what the front door adds to the viewer's."""
    p = [statistics.mean(r[0]["cpu_us"][i] for r in rounds) for i in range(len(rounds[0][0]["cpu_us"]))]
    d = [statistics.mean(r[1]["cpu_us"][i] for r in rounds) for i in range(len(rounds[0][1]["cpu_us"]))]
    if len(p) < 2:
        return "front door CPU %.0f us per request" % (p[0] if p else 0)
    return "CPU per request: front door %.0f us + viewer %.0f us, direct viewer %.0f us (%.2fx)" % (
        p[0], p[1], d[1], (p[0] + p[1]) / max(1, d[1]))


def add_pair(item, what, lat, tput, conns):
    """Two rows: sequential latency (`alternate`: p50 decides, p99 shown) and throughput
    (`interleaved`: the median round's share)."""
    td, tp = lat
    d50, p50, d99, p99 = pct(td, 0.5), pct(tp, 0.5), pct(td, 0.99), pct(tp, 0.99)
    ratio = p50 / d50
    add(item, "%s, sequential p50 / p99 (%d each, alternating)" % (what, len(td)),
        "%s / %s" % (ms(p50 * 1e6), ms(p99 * 1e6)), "%s / %s direct" % (ms(d50 * 1e6), ms(d99 * 1e6)),
        "%.2fx / %.2fx" % (ratio, p99 / d99), "p50 <= 1.2x", ratio <= 1.2,
        "one keep-alive connection each way, Python client (the same on both sides)")
    bad = sum(r[k]["bad"] + r[k]["errors"] for r in tput for k in (0, 1))
    shares = [r[0]["rps"] / r[1]["rps"] for r in tput]
    share = statistics.median(shares)
    add(item, "%s, req/s with %d connections" % (what, conns), "%.0f" % median_of(tput, 0, "rps"),
        "%.0f direct" % median_of(tput, 1, "rps"), "%.0f%%" % (100 * share), ">= 80%", share >= 0.8 and bad == 0,
        "share per round %s; %s; bad answers %d" % (
            " ".join("%.0f%%" % (100 * r) for r in shares), cpu_note(tput), bad))


def multipart(path, part_file, boundary):
    """A multipart/form-data body with `part_file`'s bytes as `file1`, written to `path`."""
    with open(part_file, "rb") as f:
        data = bytearray(f.read())
    data[0:1] = b"#"  # not JSON any more: the viewer stores it, its import fails at once
    with open(path, "wb") as f:
        f.write(("--%s\r\nContent-Disposition: form-data; name=\"file1\"; filename=\"bench.sarif\"\r\n"
                 "Content-Type: application/octet-stream\r\n\r\n" % boundary).encode())
        f.write(data)
        f.write(("\r\n--%s--\r\n" % boundary).encode())
    return os.path.getsize(path)


def upload_peak_kib(pid, url, apikey, part):
    """agent-monitor's peak RSS rise (KiB) while curl streams `part` through the door:
    VmHWM reset to the current RSS first (clear_refs 5) and read after, and VmRSS sampled
    every 2 ms meanwhile (the larger of the two counts)."""
    base = status_kb(pid, "VmRSS")
    try:
        with open("/proc/%d/clear_refs" % pid, "w") as f:
            f.write("5")
        hwm_ok = True
    except OSError:
        hwm_ok = False
    peak = [base]
    done = threading.Event()

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], status_kb(pid, "VmRSS"))
            time.sleep(0.002)
    t = threading.Thread(target=sample)
    t.start()
    try:
        r = subprocess.run(["curl", "-sS", "--noproxy", "*", "-o", "/dev/null", "-w", "%{http_code}",
                            "-H", "API-Key: " + apikey, "-F", "file1=@%s;filename=big.sarif" % part, url],
                           capture_output=True, text=True, timeout=300)
    finally:
        done.set()
        t.join()
    if r.stdout.strip() != "202":
        raise RuntimeError("upload of %s through the front door: %s %s" % (part, r.stdout, r.stderr))
    if hwm_ok:
        peak[0] = max(peak[0], status_kb(pid, "VmHWM"))
    return peak[0] - base, base


class Setup:
    """agent-monitor with a front door, a ready host viewer behind it holding the project,
    and a signed-in session: everything the rows measure through and around."""

    def __init__(self):
        self.launch_log = os.path.join(RUN, "frontdoor-launches.log")
        work = os.path.join(RUN, "frontdoor-hostjob")
        os.makedirs(work, exist_ok=True)
        self.fd_port = free_port()
        self.front = "http://127.0.0.1:%d" % self.fd_port
        self.am = Daemon("frontdoor", os.path.join(ROOT, "launchviewer", "tests", "host-job"),
                         env={"VRUN_TEST_LAUNCH_LOG": self.launch_log, "HOSTJOB_VIEWER": os.path.join(BIN, "viewer"),
                              "HOSTJOB_WORK": work},
                         args=["--libvirt-uri", "none", "--front-door-listen", "127.0.0.1:%d" % self.fd_port])

    def start(self):
        am, front = self.am, self.front
        am.start()
        self.files = os.path.join(RUN, "frontdoor-files")
        os.makedirs(self.files, exist_ok=True)
        project_sarif = gen_sarif(os.path.join(self.files, "project.sarif"), FINDINGS)
        env = dict(os.environ, AGENT_MONITOR_URL=am.url,
                   AGENT_MONITOR_SECRET_FILE=os.path.join(am.state, "secrets", "launcher.secret"))
        lv = subprocess.run([os.path.join(BIN, "launchviewer"), "--project", "fd", "--viewer", "CodeDX",
                             "--user", USER, "--package", "bench", "--wait", "120", "--results", project_sarif],
                            env=env, capture_output=True, text=True, timeout=180)
        m = re.match(r"READY (\S+)", lv.stdout)
        if lv.returncode != 0 or not m or "vrun_login=" not in m.group(1):
            raise RuntimeError("launchviewer printed no login link: %s %s" % (lv.stdout, lv.stderr))
        link = m.group(1)
        if not link.startswith(front + "/"):
            raise RuntimeError("the link %s is not at the front door %s" % (link, front))
        # The sign-in a browser makes: the link answers 303 with the session cookie.
        st, hdrs, body = fetch(link)
        self.cookie = (hdrs.get("Set-Cookie") or "").split(";")[0]
        if st != 303 or not self.cookie.startswith("vrun_session="):
            raise RuntimeError("the login link answered %d without a session: %r" % (st, body[:300]))
        self.page = link[len(front):].split("?")[0]          # /<urluuid>/projects/<id>
        self.project_id = self.page.rstrip("/").rsplit("/", 1)[1]
        self.urluuid = self.page.split("/")[1]
        av = am.rpc("launcher").isViewerAvailable("CodeDX", "fd")
        self.apikey, self.vaddr = av["apikey"], av["address"]
        self.v_port = int(self.vaddr.rsplit(":", 1)[1])
        self.vpid = viewer_pid(self.v_port)
        self.pids = [am.proc.pid] + ([self.vpid] if self.vpid else [])
        self.via_door = {"Cookie": self.cookie}
        st_p, _, body_p = fetch(front + self.page, self.via_door)
        st_d, _, body_d = fetch("http://%s%s" % (self.vaddr, self.page), self.direct())
        for name, st, b in (("through the front door", st_p, body_p), ("straight, with a proof", st_d, body_d)):
            if st != 200 or b'id="findings"' not in b:
                raise RuntimeError("findings page %s answered %d: %r" % (name, st, b[:300]))
        st, _, _ = fetch("http://%s%s" % (self.vaddr, self.page), {"X-Vrun-Proof": make_proof(self.apikey, USER, 0)})
        if st != 403:
            raise RuntimeError("the viewer took a stale proof (%d): the direct runs would not be comparable" % st)
        self.page_bytes = len(body_p)
        log("frontdoor: findings page %d bytes through the door, %d straight" % (len(body_p), len(body_d)))
        # Uploads: the analysis endpoint with the API key, as launchviewer pushes.
        boundary = "vrunbench7c1e5a"
        self.up_body = os.path.join(self.files, "upload.body")
        part = gen_sarif(os.path.join(self.files, "upload.sarif"), UPLOAD_FINDINGS)
        self.up_size = multipart(self.up_body, part, boundary)
        self.up_path = "/%s/api/projects/%s/analysis" % (self.urluuid, self.project_id)
        self.up_hdr = {"API-Key": self.apikey, "Content-Type": "multipart/form-data; boundary=" + boundary}
        return self

    def direct(self):
        """What the front door adds to a page request, made here (fresh: 300 s validity)."""
        return {"X-Vrun-Proof": make_proof(self.apikey, USER)}

    def stop(self):
        self.am.terminate()
        kill_jobs(self.launch_log)


def bench_frontdoor():
    s = Setup()
    try:
        s.start()

        def page_run(port, conns, door):
            hdr = s.via_door if door else s.direct()
            return run_wrk(port, conns, RUN_SECS, s.page, hdr, 200, expect='id="findings"', pids=s.pids,
                           profile="page-c%d" % conns if door else None)

        def upload_run(port, conns, door):
            return run_wrk(port, conns, RUN_SECS, s.up_path, s.up_hdr, 202, method="POST", body_file=s.up_body,
                           expect="jobId", pids=s.pids, profile="upload-c%d" % conns if door else None)

        item = "7 front door"
        cd, cp = keepalive(s.v_port), keepalive(s.fd_port)
        proof = s.direct()              # valid 300 s; a pass takes well under a minute
        page_lat = alternate(PAGE_SEQ, lambda: one(cd, "GET", s.page, proof, None, 200, b'id="findings"'),
                             lambda: one(cp, "GET", s.page, s.via_door, None, 200, b'id="findings"'))
        with open(s.up_body, "rb") as f:
            up = f.read()
        up_lat = alternate(UPLOAD_SEQ, lambda: one(cd, "POST", s.up_path, s.up_hdr, up, 202, b"jobId"),
                           lambda: one(cp, "POST", s.up_path, s.up_hdr, up, 202, b"jobId"))
        cd.close()
        cp.close()
        page_tput = interleaved(lambda: page_run(s.v_port, TPUT_CONNS, False),
                                lambda: page_run(s.fd_port, TPUT_CONNS, True))
        up_tput = interleaved(lambda: upload_run(s.v_port, TPUT_CONNS, False),
                              lambda: upload_run(s.fd_port, TPUT_CONNS, True))
        add_pair(item, "findings page (%d findings, %.0f kB)" % (FINDINGS, s.page_bytes / 1e3), page_lat, page_tput,
                 TPUT_CONNS)
        add_pair(item, "%.1f MB upload (202)" % (s.up_size / 1e6), up_lat, up_tput, TPUT_CONNS)

        # Memory while big uploads stream through: bounded, whatever the size.
        rises = {}
        for mb in (6, 60):
            big = os.path.join(s.files, "big%d.bin" % mb)
            with open(big, "wb") as f:
                f.truncate(mb * 1000 * 1000)
            rises[mb], base = upload_peak_kib(s.am.proc.pid, s.front + s.up_path, s.apikey, big)
            os.unlink(big)
        ok = rises[60] <= RSS_LIMIT_MIB * 1024
        add(item, "agent-monitor peak RSS rise, 60 MB upload through the door", "%.1f MiB" % (rises[60] / 1024),
            "%.1f MiB (6 MB upload)" % (rises[6] / 1024), "%+.1f MiB" % ((rises[60] - rises[6]) / 1024),
            "<= %d MiB" % RSS_LIMIT_MIB, ok, "RSS before %.1f MiB; the ratio column: what 54 MB more cost" % (
                base / 1024))
    finally:
        s.stop()
