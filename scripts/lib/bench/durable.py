"""Item 3: durable first launches."""

import os
import re
import subprocess
import time

from common import EXAMPLES, FSYNC_SECS, RUN, add, ms
from servers import Daemon, kill_jobs, standin, wait_launches, wrk


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
