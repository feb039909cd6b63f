"""Items 1 + 2: the lock storm and the status path."""

import concurrent.futures
import json
import os
import time

from common import ONLY, RUN, add
from servers import Daemon, add_http, bracketed, kill_jobs, launches, standin, wait_launches, wrk


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
            add_http("1 lock storm", "launchViewer req/s (64 conns, 500 pairs)", real, ceil, 0.50, 0.45)
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
            add_http("2 status path", "isViewerAvailable req/s (ready, 64 conns)", real, ceil, 0.70, 0.60)
    finally:
        am.terminate()
        kill_jobs(launch_log)
