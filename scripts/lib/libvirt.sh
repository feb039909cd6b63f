# Sourced by scripts: start virtlogd and libvirtd (no systemd here) if they are not running,
# and stop at exit only what this script started.
vrun_started_daemons=()

vrun_start_libvirt() {
  if ! pgrep -x virtlogd >/dev/null; then
    virtlogd -d
    vrun_started_daemons+=(virtlogd)
  fi
  if ! pgrep -x libvirtd >/dev/null; then
    libvirtd -d
    vrun_started_daemons+=(libvirtd)
  fi
  local i
  for i in $(seq 1 100); do
    virsh -c qemu:///system version >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "libvirtd did not answer on qemu:///system" >&2
  return 1
}

vrun_stop_libvirt() {
  local d
  for d in "${vrun_started_daemons[@]}"; do
    pkill -TERM -x "$d" || true
  done
  vrun_started_daemons=()
}
