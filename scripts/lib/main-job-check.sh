#!/usr/bin/env bash
# The README's main job as a newcomer runs it, checked end to end (run by scripts/test right
# after the fresh-host reset): cold `scripts/view` prints READY with the front door's URL,
# which opened as a browser would (cookies, redirects, no extra headers) shows the findings;
# a warm `scripts/view` answers with the same viewer (same domain, same URL but for its
# fresh single-use sign-in token), `scripts/view --stop`
# saves and stops, and nothing of it remains: no domain, no work directory, no process.
# It uses a state root and port of its own, so a developer's own demo is not touched.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$(pwd)
export VRUN_VIEW_VAR="$root/target/main-job-check"
export VRUN_VIEW_LISTEN="127.0.0.1:18085"
state="$VRUN_VIEW_VAR/agent-monitor"
fail() { printf 'main job: FAILED: %s\n' "$*" >&2; exit 1; }
say() { printf 'main job: %s\n' "$*" >&2; }

rm -rf "$VRUN_VIEW_VAR"
# Whatever happens, stop what the main job started (the viewer's database is saved).
trap 'scripts/view --stop >/dev/null 2>&1 || true' EXIT

status_json() {
  target/release/agent-monitor status --json --url "http://$VRUN_VIEW_LISTEN/RPC2" \
    --secret-file "$state/secrets/admin.secret"
}
field() { python3 -c 'import json,sys; r=[v for v in json.load(sys.stdin) if v["project"]=="demo"][0]; print(r[sys.argv[1]])' "$1"; }

t0=$(date +%s)
cold=$(scripts/view) || fail "cold scripts/view exited non-zero"
t1=$(date +%s)
case $cold in "READY http"*) ;; *) fail "cold scripts/view printed: $cold" ;; esac
say "cold View: $cold ($((t1 - t0)) s with build and setup)"
url=${cold#READY }
case $url in "http://127.0.0.1:18086/proxy-"*"?vrun_login="*) ;; *) fail "not the front door's sign-in URL: $url" ;; esac
jar=$(mktemp)
page=$(curl -sS --max-time 30 -L -c "$jar" -b "$jar" "$url") || fail "opening $url failed"
rm -f "$jar"
grep -q 'id="findings"' <<<"$page" || fail "opening the printed URL did not show the findings: ${page:0:300}"
say "the printed URL signs in and shows the findings"
s1=$(status_json)
domain=$(field domain <<<"$s1")
id=$(field monitor_id <<<"$s1")
[ "$(field state <<<"$s1")" = ready ] || fail "viewer not ready after the cold View: $s1"
dstate=$(virsh -c qemu:///system domstate "$domain" 2>&1) || true
[ "$dstate" = running ] || fail "domain $domain is not running: $dstate"

warm=$(scripts/view) || fail "warm scripts/view exited non-zero"
[ "${warm%%\?vrun_login=*}" = "${cold%%\?vrun_login=*}" ] || fail "warm View answered $warm, the cold one $cold"
s2=$(status_json)
[ "$(field domain <<<"$s2")" = "$domain" ] || fail "warm View runs another domain: $s2"
[ "$(field generation <<<"$s2")" = 1 ] || fail "warm View launched again: $s2"
say "warm View: same URL, same domain $domain"

scripts/view --stop >&2 || fail "scripts/view --stop exited non-zero"
s3=$(python3 - "$state/agent-monitor.sqlite3" <<'PY'
import sqlite3, sys
c = sqlite3.connect(sys.argv[1])
print(c.execute("SELECT state FROM instances WHERE project='demo' ORDER BY generation DESC LIMIT 1").fetchone()[0])
PY
)
[ "$s3" = stopped ] || fail "the viewer ended $s3, not stopped"
ls "$state"/archives/demo/CodeDX/*.archive >/dev/null 2>&1 || fail "no viewer database was stored at the stop"
# --stop also stopped the libvirtd it started: ask a fresh one (it reads every definition and
# reconnects to every running QEMU), then stop that one again.
source scripts/lib/libvirt.sh
vrun_start_libvirt
names=$(virsh -c qemu:///system list --all --name) || fail "libvirt does not answer"
vrun_stop_libvirt
left=$(grep -F "vrun-$id-" <<<"$names" || true)
[ -z "$left" ] || fail "domains remain: $left"
qemus=$(pgrep -af -- "vrun-$id-" || true)
[ -z "$qemus" ] || fail "QEMU processes remain: $qemus"
[ -z "$(ls -A "$VRUN_VIEW_VAR/work")" ] || fail "work directories remain: $(ls "$VRUN_VIEW_VAR/work")"
procs=$(pgrep -af -- "$VRUN_VIEW_VAR" || true)
[ -z "$procs" ] || fail "processes remain: $procs"
trap - EXIT
say "stopped: database stored, no domain, work directory or process left"
