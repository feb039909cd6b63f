#!/usr/bin/env python3
"""scripts/bench's driver: every benchmark next to a ceiling measured in the same run.

Run by scripts/bench (which builds, starts libvirtd if needed and stops it again); not meant
to be run by hand. Every process it starts is recorded in <run>/pids ("pid" or "-pgid" per
line) so that the wrapper's trap can stop them even if this driver dies; the driver stops
them itself on every normal or failing exit too.

Usage: bench.py [--short] [--only ITEMS]   (ITEMS: comma list of storm,status,durable,warm,cold,cold-slurm,
                                            memory,scale,frontdoor,slurm)

One module per item (storm.py, durable.py, warm.py, cold.py, cold_slurm.py, memory.py, scale.py, frontdoor.py,
slurm.py), each adding its rows
to the table; common.py holds the settings, process bookkeeping and rows, servers.py the
agent-monitor, ceiling and wrk runners they share. This file only runs them in order.
"""

import os
import shutil
import signal
import sys
import time

from common import ONLY, OUT_DIR, PIDS, RUN, SHORT, log, notes, rows, stop_all
from storm import bench_storm_and_status
from durable import bench_durable
from warm import bench_warm
from cold import bench_cold
from cold_slurm import bench_cold_slurm
from memory import bench_memory
from frontdoor import bench_frontdoor
from slurm import bench_slurm
from scale import bench_scale


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
             ("cold", bench_cold), ("cold-slurm", bench_cold_slurm), ("memory", bench_memory),
             ("scale", bench_scale), ("frontdoor", bench_frontdoor), ("slurm", bench_slurm)]
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
