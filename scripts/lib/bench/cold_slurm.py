"""Item 5 through Slurm: the cold View with a real VM started by a real slurmctld/slurmd
(scripts/lib/slurm.sh, one node on this host), agent-monitor with `--launcher slurm` and the
node's DomainMonitor, against the same bare boots as the local row."""

import glob
import os
import subprocess

from common import BIN, RUN, ROOT, log, notes, remember
from cold import fresh_runtime, series, viewer_image, wait_verdict, with_front_door
from servers import Daemon

SLURM_SH = os.path.join(ROOT, "scripts", "lib", "slurm.sh")


def slurm(dirname, call):
    subprocess.run(["bash", "-c", "source %s && %s" % (SLURM_SH, call)], check=True, stdout=subprocess.DEVNULL)
    # Everything the cluster runs is in its pids file: the bench's trap stops it too.
    with open(os.path.join(dirname, "pids")) as f:
        for pid in f.read().split():
            remember(int(pid))


def bench_cold_slurm():
    image = viewer_image()
    d = os.path.join(RUN, "slurm")
    logs = os.path.join(d, "logs")
    os.makedirs(logs, exist_ok=True)
    os.chmod(RUN, 0o755)
    conf = os.path.join(d, "cluster", "slurm.conf")
    log("starting a one-node Slurm cluster")
    # One node of 2 CPUs and 2 GiB (a viewer job asks 1 CPU and 512 + 256 MiB).
    slurm(os.path.join(d, "cluster"), "vrun_slurm_start %s 1 2 2048" % os.path.join(d, "cluster"))
    env_slurm = dict(os.environ, SLURM_CONF=conf)
    vmrun, work = fresh_runtime("cold-slurm")
    am = with_front_door(Daemon("cold-slurm", os.path.join(BIN, "vruntask"),
                                env={"VRUN_WORK_ROOT": work, "VRUN_RUNTIME_DIR": vmrun, "RUST_LOG": "info",
                                     "VRUN_LIBVIRT_URI": "qemu:///system", "SLURM_CONF": conf},
                                args=["--platform", image, "--launcher", "slurm", "--libvirt-uri", "none",
                                      "--slurm-output", os.path.join(logs, "%x.%j.log")]))
    dm = None
    try:
        am.start()
        # The node's set-up: its DomainMonitor, and the accelerator verdict settled before
        # anyone clicks (a Slurm node has no agent-monitor of its own to start the probe).
        dm_log = open(os.path.join(RUN, "cold-slurm-domain-monitor.log"), "a")
        dm = subprocess.Popen([os.path.join(BIN, "vruntask"), "domain-monitor", "--node-name", "n1",
                               "--agent-monitor-url", am.url,
                               "--secret-file", os.path.join(am.state, "secrets", "node.secret"),
                               "--uri", "qemu:///system", "--every", "1", "--runtime-dir", vmrun,
                               "--work-root", work],
                              env=dict(os.environ, RUST_LOG="info"), stdin=subprocess.DEVNULL,
                              stdout=subprocess.DEVNULL, stderr=dm_log)
        remember(dm.pid)
        subprocess.run([os.path.join(BIN, "vruntask"), "probe-accel", "--kernel", os.path.join(image, "vmlinuz"),
                        "--runtime-dir", vmrun], check=True, timeout=60, stderr=subprocess.DEVNULL)
        verdict, _ = wait_verdict(vmrun)
        notes.append("5 cold View, Slurm: the node's accelerator verdict (probe-accel at set-up): %s" % verdict)
        env = dict(env_slurm, AGENT_MONITOR_URL=am.url,
                   AGENT_MONITOR_SECRET_FILE=os.path.join(am.state, "secrets", "launcher.secret"))

        def joblog_of(st):
            # Slurm's output of that generation: %x.%j.log, %x = vrun.<project>.<viewer>.g<N>.
            got = glob.glob(os.path.join(logs, "vrun.%s.CodeDX.g%d.*.log" % (st["project"], st["generation"])))
            if not got:
                raise RuntimeError("no Slurm output for %s g%d in %s" % (st["project"], st["generation"], logs))
            return got[0]

        series("5 cold View, Slurm", "click -> findings page through the front door, VM via sbatch",
               "<= +2 s", am, env, joblog_of, image, verdict)
    finally:
        am.terminate()
        if dm and dm.poll() is None:
            dm.terminate()
            dm.wait(15)
        cl = os.path.join(d, "cluster")
        subprocess.run(["scancel", "--partition=viewers", "--signal=KILL", "--full"], env=env_slurm,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        subprocess.run(["bash", "-c", "source %s && vrun_slurm_stop %s" % (SLURM_SH, cl)],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
