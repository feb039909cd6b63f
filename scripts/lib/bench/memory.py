"""Item 6: memory and start-up."""

import concurrent.futures
import http.client
import json
import os
import statistics
import subprocess
import time
import urllib.request

from common import BIN, FINDINGS, MANY, RUN, SHORT, add, gen_sarif, http_json, log, make_proof, remember, status_kb
from servers import Daemon, kill_jobs, standin, wait_launches


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
        req = urllib.request.Request(base + "/projects/%d" % pid, headers={"X-Vrun-Proof": make_proof("ab" * 32, "alice")})
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
