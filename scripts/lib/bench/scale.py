"""Scale: the status path and the lock storm with 100,000 live instances, against 500 in the
same run; agent-monitor's peak RSS holding them, and its restart to the first answer.

Both daemons use the recording launcher (`--launcher record`, for benchmarks and tests: it
records each job start in <state>/jobs/recorded-jobs.log and spawns nothing), so 100,000
"running" jobs are not 100,000 processes; everything else is the daemon's normal path. The
instances are filled with `launchViewer` over wrk's 64 connections (rpc.lua's `fill` mode),
and stay `launching` (recorded jobs report nothing): status answers "not ready yet" from the
live map in both daemons alike, so the two figures compare the lookup at 500 and at 100,000.
"""

import os
import sqlite3
import statistics
import time

from common import RUN, SCALE, SHORT, add, log, status_kb
from memory import restart_ms
from servers import Daemon, wrk

ARGS = ["--libvirt-uri", "none", "--launcher", "record", "--lease-secs", "3600",
        "--start-grace-secs", "3600", "--launch-deadline-secs", "3600"]


def counts(am):
    """(live instances in the database, job starts recorded): read-only, beside the daemon."""
    db = sqlite3.connect("file:%s?mode=ro" % os.path.join(am.state, "agent-monitor.sqlite3"), uri=True, timeout=30)
    try:
        live = db.execute("SELECT count(*) FROM instances WHERE state NOT IN ('stopped', 'failed')").fetchone()[0]
    finally:
        db.close()
    try:
        with open(os.path.join(am.state, "jobs", "recorded-jobs.log")) as f:
            starts = sum(1 for line in f if line.startswith("start "))
    except FileNotFoundError:
        starts = 0
    return live, starts


def fill(am, n):
    """Launches p1..pn through launchViewer; returns the seconds it took."""
    auth = am.basic("launcher")
    t = time.monotonic()
    for _ in range(20):
        wrk(am.port, "fill", auth, secs=max(2, n // 4000), pairs=n)
        live, _ = counts(am)
        if live >= n:
            break
    took = time.monotonic() - t
    end = time.monotonic() + 120
    while counts(am)[1] < n and time.monotonic() < end:
        time.sleep(0.2)
    live, starts = counts(am)
    if live != n or starts != n:
        raise RuntimeError("filled %d live instances with %d job starts, not %d" % (live, starts, n))
    return took


def measure(am, n):
    auth = am.basic("launcher")
    status = wrk(am.port, "status", auth, pairs=n, pid=am.proc.pid, expect="launching")
    storm = wrk(am.port, "launch", auth, pairs=n, pid=am.proc.pid)
    return status, storm


def bench_scale():
    n = SCALE
    ref = Daemon("scale-500", "/bin/false", args=ARGS).start()
    try:
        fill(ref, 500)
        ref_status, ref_storm = measure(ref, 500)
        ref_hwm = status_kb(ref.proc.pid, "VmHWM")
    finally:
        ref.terminate()

    am = Daemon("scale", "/bin/false", args=ARGS).start()
    try:
        log("filling %d live instances" % n)
        took = fill(am, n)
        log("filled in %.1f s" % took)
        status, storm = measure(am, n)
        hwm = status_kb(am.proc.pid, "VmHWM")
        for name, real, ref_r, metric in (("status", status, ref_status, "isViewerAvailable req/s"),
                                          ("storm", storm, ref_storm, "launchViewer req/s (held pairs)")):
            ratio = real["rps"] / ref_r["rps"]
            add("9 scale", "%s, %d live (64 conns)" % (metric, n), "%.0f" % real["rps"],
                "%.0f (500 live)" % ref_r["rps"], "%.0f%%" % (100 * ratio), ">= 10,000 and >= 90%",
                real["rps"] >= 10000 and ratio >= 0.9 and real["bad"] == 0,
                "CPU/call %.0f vs %.0f us; p99 %.2f vs %.2f ms; bad %d" % (
                    real["cpu_us"], ref_r["cpu_us"], real["p99_us"] / 1000, ref_r["p99_us"] / 1000, real["bad"]))
        add("9 scale", "agent-monitor peak RSS, %d live (recorded jobs)" % n, "%.1f MB" % (hwm / 1024),
            "%.1f MB (500 live)" % (ref_hwm / 1024), "%.1fx" % (hwm / ref_hwm), "<= 60 MB", hwm / 1024 <= 60,
            "filled by launchViewer in %.1f s (%.0f/s)" % (took, n / took))
        times = [restart_ms(am) for _ in range(1 if SHORT else 3)]
        restart = statistics.median(times)
        # All adopted: the restarted daemon's repair fails none of them and starts no job again.
        end = time.monotonic() + 60
        while time.monotonic() < end:
            time.sleep(1)
            live, starts = counts(am)
            if live != n or starts != n:
                break
        live, starts = counts(am)
        after = status_kb(am.proc.pid, "VmHWM")
        add("9 scale", "restart to first answer, %d live" % n, "%.0f ms" % restart, "-", "-", "<= 1 s",
            restart <= 1000 and live == n and starts == n,
            "runs: %s; afterwards %d live, %d job starts recorded; peak RSS after restart %.1f MB" % (
                ", ".join("%.0f" % x for x in times), live, starts, after / 1024))
    finally:
        am.terminate()
