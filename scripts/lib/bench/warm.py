"""Item 4: the warm View."""

import os
import statistics
import subprocess
import time

from common import BIN, ROOT, RUN, WARM_RUNS, add, gen_sarif, http_json
from servers import Daemon, kill_jobs


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
