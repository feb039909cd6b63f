"""Item 5: the cold View with the real VM."""

import http.cookiejar
import json
import os
import re
import shutil
import subprocess
import time
import urllib.request

from common import BIN, ROOT, RUN, SHORT, add, free_port, log, notes, remember
from servers import Daemon


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


def cpu_group():
    """A CPU cgroup for the bare QEMU like the one libvirt gives each VM: libvirtd puts its
    QEMU in `machine/<domain>` (cgroup v1 `cpu`: the whole VM weighs as much as one task when
    the machine is busy), while a plain child of the bench competes thread by thread in the
    root group, so under other sessions' load the reference got more CPU than the VM. None (no group) where there is no such hierarchy."""
    base = "/sys/fs/cgroup/cpu"
    if not os.path.isdir(os.path.join(base, "machine")):
        return None
    group = os.path.join(base, "vrun-bench-bare")
    try:
        os.makedirs(group, exist_ok=True)
        return group
    except OSError as e:
        log("no CPU group for the bare boot (%s); it runs in the bench's own" % e)
        return None


def boot_kernel(image):
    """The kernel vruntask boots (runner::boot_kernel): the uncompressed one when the image has it."""
    direct = os.path.join(image, "vmlinux")
    return direct if os.path.isfile(direct) else os.path.join(image, "vmlinuz")


def bare_boot(image, accel="tcg"):
    d = os.path.join(RUN, "bare-%d" % time.monotonic_ns())
    os.makedirs(d)
    with open(os.path.join(d, "run.json"), "w") as f:
        json.dump({"project": "p", "viewer": "CodeDX", "users": ["alice"], "apikey": "0" * 64,
                   "urluuid": "proxy-1b4e28ba-2fa1-11d2-883f-0016d3cca427", "port": 8080}, f)
    subprocess.run("tar --format=ustar -cf cfg.img run.json && truncate -s %1M cfg.img && truncate -s 64M out.img",
                   shell=True, cwd=d, check=True)
    serial = os.path.join(d, "serial.log")
    cmd = ["qemu-system-x86_64", "-machine", "q35,accel=" + accel, "-m", "512", "-smp", "1", "-display", "none",
           "-monitor", "none", "-no-reboot", "-kernel", boot_kernel(image),
           "-initrd", os.path.join(image, "initrd.img"), "-append", "console=ttyS0 quiet loglevel=3 panic=1",
           "-drive", "file=cfg.img,format=raw,if=virtio", "-drive", "file=out.img,format=raw,if=virtio",
           "-netdev", "user,id=n0,hostfwd=tcp:127.0.0.1:%d-:8080" % free_port(),
           "-device", "virtio-net-pci,netdev=n0", "-serial", "file:" + serial]
    group = cpu_group()
    if group:
        # Into the group before QEMU starts, so every thread it makes is there too.
        cmd = ["sh", "-c", 'echo $$ > "$0/cgroup.procs" && exec "$@"', group] + cmd
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
        if group:
            try:
                os.rmdir(group)
            except OSError:
                pass


def open_door(url):
    """Opens the printed URL as a browser would: the login link's 303 (which sets the
    session cookie), then the clean URL with the cookie, through the front door to the
    viewer's findings page. Returns when the page has been read; raises unless it is the
    viewer's own 200 page."""
    jar = urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar())
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}), jar)
    with opener.open(url, timeout=30) as r:
        body = r.read()
        if r.status != 200 or "vrun_login=" in r.geturl() or b"<h1>This viewer" in body:
            raise RuntimeError("the printed URL did not show the findings: %s %s" % (r.status, r.geturl()))
        if not any(c.name == "vrun_session" for c in jar.cookiejar):
            raise RuntimeError("the front door set no session cookie")
    return len(body)


def wait_verdict(runtime_dir, within=30):
    """Waits (bounded) for the accelerator verdict of this host boot in `runtime_dir`: what
    agent-monitor's start-up probe (or a node's set-up) leaves. Returns (verdict, seconds)."""
    boot = open("/proc/sys/kernel/random/boot_id").read().strip()
    t = time.monotonic()
    end = t + within
    while time.monotonic() < end:
        try:
            got = open(os.path.join(runtime_dir, "accel")).read().split()
            if len(got) == 2 and got[0] == boot:
                return got[1], time.monotonic() - t
        except FileNotFoundError:
            pass
        time.sleep(0.05)
    raise RuntimeError("no accelerator verdict in %s within %d s" % (runtime_dir, within))


def fresh_runtime(name):
    """An empty runtime directory (a new host's /run/vrun: no cached verdict) and work root."""
    vmrun = os.path.join(RUN, name + "-vmrun")
    work = os.path.join(RUN, name + "-vmwork")
    for d in (vmrun, work):
        shutil.rmtree(d, ignore_errors=True)
        os.makedirs(d)
        os.chmod(d, 0o711)
    return vmrun, work


def cold_view(am, env, project, joblog_of):
    """One click -> findings page with a real VM: launchviewer prints the front door's link,
    which is then opened as a browser would. The total and its phases, then the VM stopped."""
    try:
        click = time.time()
        t = time.monotonic()
        r = subprocess.run([os.path.join(BIN, "launchviewer"), "--project", project, "--viewer", "CodeDX",
                            "--user", "alice", "--package", "sample", "--wait", "300",
                            "--results", os.path.join(ROOT, "launchviewer", "samples", "sample.sarif")],
                           env=env, capture_output=True, text=True, timeout=360)
        printed = time.monotonic() - t
        if not r.stdout.startswith("READY "):
            raise RuntimeError("cold View failed: %s %s" % (r.stdout, r.stderr))
        url = r.stdout.split()[1]
        if not url.startswith(am.door) or "vrun_login=" not in url:
            raise RuntimeError("launchviewer printed no front-door link: %s" % url)
        open_door(url)
        total = time.monotonic() - t
        st = am.rpc().viewerStatus({"project": project, "viewer": "CodeDX"})
        hist = {}
        for h in st["history"]:
            hist.setdefault(h["to"], h["at"])
        joblog = joblog_of(st)
        jt = log_times(joblog, {"start": "viewer run starting", "vm": "VM started", "up": "ev=ViewerUp",
                                "ready": "viewer ready", "probe": "accelerator probed"})
        phases = [
            ("lock (click -> launching committed)", hist["launching"] - click),
            ("job start (committed -> vruntask running)", jt["start"] - hist["launching"]),
            ("disks + define + start (-> VM started)", jt["vm"] - jt["start"]),
            ("boot (VM started -> VIEWERUP)", jt["up"] - jt["vm"]),
            ("ready reported (VIEWERUP -> ready)", hist["ready"] - jt["up"]),
            ("wait + upload + import (ready -> URL)", click + printed - hist["ready"]),
            ("front door (URL -> findings page)", total - printed),
        ]
        return total, phases, "probe" in jt
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


def check_kvm_mode():
    """A host without udev leaves /dev/kvm 0600 root:root, and libvirt then re-probes QEMU on
    every call (a define takes about a minute): scripts/bench fixes the mode
    (scripts/lib/libvirt.sh); refuse to measure a host it has not fixed."""
    if not os.path.exists("/dev/kvm"):
        return
    st = os.stat("/dev/kvm")
    import grp
    try:
        kvm = grp.getgrnam("kvm").gr_gid
    except KeyError:
        kvm = None
    if st.st_gid != kvm or (st.st_mode & 0o060) != 0o060:
        raise RuntimeError("/dev/kvm is %o gid %d: run through scripts/bench (vrun_fix_kvm_mode), or libvirt "
                           "re-probes QEMU on every call" % (st.st_mode & 0o777, st.st_gid))


def viewer_image():
    check_kvm_mode()
    image = os.path.join(ROOT, "target", "viewer-image")
    log("building the viewer image")
    subprocess.run([os.path.join(ROOT, "scripts", "build-viewer-image"), "--out", image], check=True,
                   stdout=subprocess.DEVNULL)
    return image


def with_front_door(am):
    """Gives Daemon `am` a front door on a port of its own (scripts/view: RPC port + 1)."""
    port = free_port()
    am.args += ["--front-door-listen", "127.0.0.1:%d" % port]
    am.door = "http://127.0.0.1:%d/" % port
    return am


def series(item, what, target, am, env, joblog_of, image, accel):
    """Bare boots and cold Views alternate (bare, View, bare, View, ..., bare), and each View
    is compared with the mean of the bare boots either side of it: a boot under TCG varies by
    a few tenths of a second with the machine's load, as much as the target. The median
    difference counts; the row says whether any View paid the accelerator probe."""
    runs = 1 if SHORT else 3
    log("bare qemu boot")
    bare = [bare_boot(image, accel)]
    views = []
    for i in range(runs):
        log("%s: cold View %d of %d (boots a VM)" % (item, i + 1, runs))
        # Unique projects: domain names must not meet other runs' or each other's.
        views.append(cold_view(am, env, "bench%dx%s%d" % (os.getpid(), item.split()[0], i), joblog_of))
        log("bare qemu boot")
        bare.append(bare_boot(image, accel))
    overs = [total - (bare[i] + bare[i + 1]) / 2 for i, (total, _, _) in enumerate(views)]
    mid = sorted(range(runs), key=lambda i: overs[i])[runs // 2]
    total, phases, _ = views[mid]
    bare_s = (bare[mid] + bare[mid + 1]) / 2
    probed = [i + 1 for i, v in enumerate(views) if v[2]]
    notes.append("%s: bare boots %s s; Views %s s" % (item, ", ".join("%.2f" % b for b in bare),
                                                       ", ".join("%.2f" % v[0] for v in views)))
    for name, secs in phases:
        notes.append("%s phase: %-44s %6.2f s" % (item, name, secs))
    over = overs[mid]
    limit = float(target.split("+")[1].split()[0])
    add(item, "%s%s" % (what, "" if runs == 1 else ", median of %d" % runs),
        "%.2f s" % total, "%.2f s (bare qemu -> VIEWERUP, %s)" % (bare_s, accel), "%+.2f s" % over, target,
        over <= limit and not probed,
        "; ".join("%s %.2f" % (n.split(" (")[0], s) for n, s in phases)
        + ("; all: %s" % ", ".join("%+.2f" % o for o in overs) if runs > 1 else "")
        + ("; probe paid by View %s" % ",".join(map(str, probed)) if probed else "; no View paid the probe"))


def bench_cold():
    image = viewer_image()
    # A new host: an empty runtime directory (no accelerator verdict cached by an earlier
    # run), agent-monitor started, and its start-up probe finished, as it is for a daemon
    # started before anyone clicked. Then the clicks.
    vmrun, work = fresh_runtime("cold")
    am = with_front_door(Daemon("cold", os.path.join(BIN, "vruntask"),
                                env={"VRUN_WORK_ROOT": work, "VRUN_RUNTIME_DIR": vmrun, "RUST_LOG": "info"},
                                args=["--platform", image]))
    am.start()
    try:
        verdict, secs = wait_verdict(vmrun)
        notes.append("5 cold View: agent-monitor's start-up probe: %s, cached %.2f s after it served" % (verdict, secs))
        env = dict(os.environ, AGENT_MONITOR_URL=am.url,
                   AGENT_MONITOR_SECRET_FILE=os.path.join(am.state, "secrets", "launcher.secret"))
        series("5 cold View", "click -> findings page through the front door, real VM", "<= +1 s",
               am, env, lambda st: os.path.join(am.state, "jobs", "g%d.log" % st["generation"]), image, verdict)
    finally:
        am.terminate()
