# Sourced by scripts: libvirt on a host without systemd or udev.
#   vrun_start_libvirt       give /dev/kvm a normal host's mode, then start virtlogd and
#                            libvirtd (qemu:///system) unless they run; remembers the PIDs
#                            of what it started
#   vrun_stop_libvirt        stop, by PID, only what vrun_start_libvirt started
#   vrun_fresh_host_libvirt  make libvirt look like a brand-new host's (tests only)
vrun_started_pids=()
# Set by vrun_fresh_host_libvirt when it stopped a libvirtd it had not started.
vrun_libvirtd_was_running=""

vrun_say() { printf 'vrun: %s\n' "$*" >&2; }

# A host without udev leaves /dev/kvm `crw------- root root`. libvirtd then probes QEMU's
# capabilities as root (KVM usable), validates them for the libvirt-qemu user (KVM not
# usable), throws its cache away and probes again on every call: a `define` takes about a
# minute and jobs time out. udev's rule on every normal Debian host gives it 0660 root:kvm
# (libvirt-qemu is in group kvm), which keeps the cache valid.
vrun_fix_kvm_mode() {
  [ -c /dev/kvm ] || return 0
  local now
  now=$(stat -c '%a %U:%G' /dev/kvm)
  [ "$now" = "660 root:kvm" ] && return 0
  getent group kvm >/dev/null || groupadd --system kvm
  chown root:kvm /dev/kvm
  chmod 0660 /dev/kvm
  vrun_say "/dev/kvm was $now; set it to 660 root:kvm as udev does on a normal host (otherwise libvirt re-probes QEMU on every call)"
}

# The PID a daemon wrote to its pidfile, if that process still runs under that name.
vrun_daemon_pid() {
  local name=$1 pid
  pid=$(cat "/run/$name.pid" 2>/dev/null) || return 1
  [ -n "$pid" ] && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$name" ] && echo "$pid"
}

vrun_start_libvirt() {
  vrun_fix_kvm_mode
  local d pid
  for d in virtlogd libvirtd; do
    if ! pgrep -x "$d" >/dev/null; then
      "$d" -d
      pid=""
      for _ in $(seq 1 50); do pid=$(vrun_daemon_pid "$d") && break; sleep 0.1; done
      [ -n "$pid" ] || { vrun_say "$d did not start (no /run/$d.pid)"; return 1; }
      vrun_started_pids+=("$d:$pid")
    fi
  done
  local i
  for i in $(seq 1 100); do
    virsh -c qemu:///system version >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  vrun_say "libvirtd did not answer on qemu:///system"
  return 1
}

# Stops what vrun_start_libvirt started (libvirtd first: it logs through virtlogd), by PID,
# waiting up to 10 s for each. A daemon of ours that was restarted meanwhile (a test
# restarts libvirtd) is stopped by the PID its pidfile names now.
vrun_stop_libvirt() {
  local i name pid
  for ((i = ${#vrun_started_pids[@]} - 1; i >= 0; i--)); do
    name=${vrun_started_pids[$i]%%:*}
    pid=${vrun_started_pids[$i]#*:}
    [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$name" ] || pid=$(vrun_daemon_pid "$name") || continue
    kill -TERM "$pid" 2>/dev/null || continue
    for _ in $(seq 1 100); do [ -d "/proc/$pid" ] || break; sleep 0.1; done
  done
  vrun_started_pids=()
}

# What a brand-new Debian 12 host looks like to libvirt, so the tests see what a newcomer
# sees: no QEMU capability cache, /dev/kvm as a host without udev leaves it, and libvirtd
# started afresh. A libvirtd already running is stopped by its own pidfile's PID (it is
# started again, fresh, by vrun_start_libvirt). Only for the test command.
vrun_fresh_host_libvirt() {
  local pid
  if pid=$(vrun_daemon_pid libvirtd); then
    vrun_libvirtd_was_running=1
    kill -TERM "$pid"
    for _ in $(seq 1 100); do [ -d "/proc/$pid" ] || break; sleep 0.1; done
    [ -d "/proc/$pid" ] && { vrun_say "libvirtd (pid $pid) did not stop"; return 1; }
  fi
  rm -rf /var/cache/libvirt/qemu/capabilities
  if [ -c /dev/kvm ]; then
    chown root:root /dev/kvm
    chmod 0600 /dev/kvm
  fi
  vrun_say "fresh host for libvirt: no QEMU capability cache, /dev/kvm 0600 root:root, libvirtd stopped"
}
