"""Item 8: Slurm. A click to a job running on a node through a real slurmctld/slurmd cluster
(scripts/lib/slurm.sh) against the local process launcher in the same run, and the sweep's one
Slurm query (SlurmLauncher::probe_all) with 1,000 of our jobs queued against a bare squeue.

"Running" is the moment the job command (vruntask; here a stand-in that does no VM) starts on
the node, read by the job itself from the clock (`date +%s.%N` as its first command; the
node is this host, so the click's clock and the job's are the same). The click is the moment
before the launchViewer call is sent. Both launchers run the same stand-in: the local one
spawns it, Slurm's batch script (agent-monitor's, see agent-monitor/src/launcher/slurm.rs)
execs it on the node slurmctld chose.
"""

import os
import random
import re
import statistics
import subprocess
import time
import concurrent.futures

from common import EXAMPLES, ROOT, RUN, SHORT, add, log, notes, remember, write_exec
from servers import Daemon, kill_jobs, launches

SLURM_SH = os.path.join(ROOT, "scripts", "lib", "slurm.sh")
CLICKS = 3 if SHORT else 10
QUEUED = 100 if SHORT else 1000
NODES = 3


def cluster_start(d):
    subprocess.run(["bash", "-c", 'source "$0" && vrun_slurm_start "$1" "$2" 1 1024', SLURM_SH, d, str(NODES)],
                   check=True, stdout=subprocess.DEVNULL)
    with open(os.path.join(d, "pids")) as f:
        for pid in f.read().split():
            remember(int(pid))
    return dict(os.environ, SLURM_CONF=os.path.join(d, "slurm.conf"))


def cluster_stop(d, env):
    # Jobs first (a stopped slurmd leaves its jobs' processes running), then the daemons.
    subprocess.run(["scancel", "--partition=viewers"], env=env, capture_output=True)
    time.sleep(1)
    subprocess.run(["scancel", "--partition=viewers", "--signal=KILL", "--full"], env=env, capture_output=True)
    subprocess.run(["bash", "-c", 'source "$0" && vrun_slurm_stop "$1"', SLURM_SH, d], capture_output=True)


def standin():
    """vruntask's stand-in: notes its start (its own clock), then lives like a viewer job.
    A line of the launch log: "<pid> <unix time> <slurm job id or ->"."""
    path = os.path.join(RUN, "job-slurm-standin")
    write_exec(path, '#!/bin/sh\necho "$$ $(date +%s.%N) ${SLURM_JOB_ID:--}" >> "$VRUN_TEST_LAUNCH_LOG"\n'
                     'exec sleep 900\n')
    return path


def click(am, launch_log, project):
    """One launchViewer; seconds from the call to the job's own start, and its Slurm job id."""
    before = len(launches(launch_log))
    lc = am.rpc("launcher")
    t = time.time()
    lc.launchViewer({"project": project, "viewer": "CodeDX", "user": "alice"})
    end = time.monotonic() + 60
    while time.monotonic() < end:
        got = launches(launch_log)
        if len(got) > before:
            started, job = got[before][1].split()[:2]
            return float(started) - t, (job, t, float(started))
        time.sleep(0.002)
    raise RuntimeError("the job of %s did not start within 60 s (see %s.log)" % (project, am.name))


def stop_viewer(am, project):
    # killViewer answers once the job is gone (scancel, or SIGTERM to the local job); the
    # stand-in never heartbeats, so abortViewer's request to stop would never reach it.
    am.rpc().killViewer({"project": project, "viewer": "CodeDX"})


CTLD_LINE = re.compile(r"^\[(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+)\] (?:_slurm_rpc_submit_batch_job: |sched: Allocate )"
                       r"JobId=(\d+)")


def ctld_times(logfile):
    """slurmctld's submit and allocate times per job id (Unix seconds)."""
    sub, alloc = {}, {}
    with open(logfile, errors="replace") as f:
        for line in f:
            m = CTLD_LINE.match(line)
            if m:
                ts = time.mktime(time.strptime(m.group(1)[:19], "%Y-%m-%dT%H:%M:%S")) + float("0." + m.group(1)[20:])
                (sub if "submit" in line else alloc)[m.group(2)] = ts
    return sub, alloc


def timed(cmd, env, runs):
    ts = []
    for _ in range(runs):
        t = time.monotonic()
        r = subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        ts.append((time.monotonic() - t) * 1000)
        if r.returncode != 0:
            raise RuntimeError("%s failed: %s" % (" ".join(cmd), r.stderr))
    return statistics.median(ts), ts


def bench_clicks(env, cdir):
    job = standin()
    local_log = os.path.join(RUN, "slurm-local-launches.log")
    slurm_log = os.path.join(RUN, "slurm-slurm-launches.log")
    common = ["--libvirt-uri", "none", "--lease-secs", "600", "--start-grace-secs", "600"]
    local = Daemon("slurm-local", job, env={"VRUN_TEST_LAUNCH_LOG": local_log}, args=common).start()
    slurm = Daemon("slurm-slurm", job, env={"VRUN_TEST_LAUNCH_LOG": slurm_log, "SLURM_CONF": env["SLURM_CONF"]},
                   args=common + ["--launcher", "slurm", "--slurm-output", os.path.join(RUN, "slurm-%x.%j.log")]
                   ).start()
    try:
        rnd = random.Random(19)
        lo, sl, ids = [], [], []
        for i in range(CLICKS + 1):      # interleaved, so both see the same noise; the first is not counted
            # slurmctld places a submitted job at a wake of a loop that runs once a second: a
            # random phase, so the clicks do not lock onto it.
            time.sleep(rnd.uniform(0, 1))
            took, _ = click(local, local_log, "lo%d" % i)
            stop_viewer(local, "lo%d" % i)
            time.sleep(rnd.uniform(0, 1))
            stook, job = click(slurm, slurm_log, "sl%d" % i)
            stop_viewer(slurm, "sl%d" % i)
            if i:
                lo.append(took)
                sl.append(stook)
                ids.append(job)
        sub, alloc = ctld_times(os.path.join(cdir, "log", "slurmctld.log"))
        # Each Slurm click in three: agent-monitor to sbatch's arrival (its pre-submit squeue,
        # sbatch), slurmctld's placement, and slurmd's launch of the job.
        phases = [(sub[j] - t, alloc[j] - sub[j], run - alloc[j]) for j, t, run in ids if j in sub and j in alloc]
        return lo, sl, phases
    finally:
        local.terminate()
        slurm.terminate()
        kill_jobs(local_log)
        kill_jobs(slurm_log)


def submit_held(env, n, comment):
    script = "#!/bin/sh\nexit 0\n"

    def one(i):
        subprocess.run(["sbatch", "--parsable", "--hold", "--no-requeue", "--chdir=/", "--output=/dev/null",
                        "--job-name=vrun.q%d.CodeDX.g%d" % (i, i), "--comment=" + comment, "--mem=512M"],
                       input=script, env=env, check=True, capture_output=True, text=True)
    with concurrent.futures.ThreadPoolExecutor(6) as ex:
        list(ex.map(one, range(1, n + 1)))


def bench_query(env):
    comment_id = "bench%d" % os.getpid()
    fmt = ["squeue", "--me", "--states=all", "--noheader", "--format", "%i|%j|%T|%r|%B|%k"]
    empty_ms, _ = timed(fmt, env, 10)
    t = time.monotonic()
    log("submitting %d held jobs" % QUEUED)
    submit_held(env, QUEUED, "vrun " + comment_id)
    log("submitted in %.1f s" % (time.monotonic() - t))
    calls = 10 if SHORT else 30
    # Interleaved runs of the real call and the bare squeue, so both see the same load.
    probe, bare = [], []
    for _ in range(3):
        out = subprocess.run([os.path.join(EXAMPLES, "slurm_probe"), comment_id, str(QUEUED), str(calls // 3)],
                             env=env, check=True, capture_output=True, text=True).stdout
        r = dict(kv.split("=") for kv in out.split())
        if int(r["queued"]) != QUEUED:
            raise RuntimeError("probe_all did not see the %d queued jobs: %s" % (QUEUED, out))
        probe.append(float(r["median_ms"]))
        bare.append(timed(fmt, env, calls // 3)[0])
    json_ms, _ = timed(["squeue", "--json", "--states=all"], env, 3)
    return statistics.median(probe), statistics.median(bare), empty_ms, json_ms, probe


def bench_slurm():
    cdir = os.path.join(RUN, "slurm-cluster")
    log("starting a Slurm cluster of %d nodes" % NODES)
    env = cluster_start(cdir)
    try:
        lo, sl, phases = bench_clicks(env, cdir)
        lmed, smed = statistics.median(lo), statistics.median(sl)
        lmax, smax = max(lo), max(sl)
        over = smed - lmed
        add("8 Slurm", "click -> job running on a node, median of %d" % CLICKS, "%.2f s" % smed,
            "%.2f s (local launcher)" % lmed, "%+.2f s" % over, "<= +1 s", over <= 1.0,
            "slowest: Slurm %.2f s, local %.2f s (%+.2f s)" % (smax, lmax, smax - lmax))
        if phases:
            for k, name in enumerate(("click -> sbatch at slurmctld (agent-monitor: squeue + sbatch)",
                                      "submit -> allocate (slurmctld: its next wake)",
                                      "allocate -> job running (slurmd launch)")):
                xs = [p[k] for p in phases]
                notes.append("Slurm click phase: %-62s median %.2f s, max %.2f s" % (name, statistics.median(xs), max(xs)))
        notes.append("Slurm clicks (s): %s" % " ".join("%.2f" % x for x in sl))
        notes.append("local clicks (s): %s" % " ".join("%.3f" % x for x in lo))
        probe, bare, empty_ms, json_ms, runs = bench_query(env)
        add("8 Slurm", "sweep's Slurm query (probe_all), %d jobs queued" % QUEUED, "%.0f ms" % probe,
            "%.0f ms (bare squeue, same format and jobs)" % bare, "%.2fx" % (probe / bare), "<= 100 ms",
            probe <= 100, "squeue with no jobs %.0f ms; squeue --json (the call before) %.0f ms; runs %s"
            % (empty_ms, json_ms, ", ".join("%.0f" % x for x in runs)))
    finally:
        cluster_stop(cdir, env)
