#!/bin/sh
# Viewer start-up inside the viewer VM; run by /init (PID 1). Every value the
# viewer needs comes from run.json, which only the viewer binary reads:
# nothing from the configuration disk is ever spliced into shell code.
# Prints the event lines RUNSHSTART, DBRESTORED/DBFRESH or VRUNERROR on the
# serial port, starts `viewer serve` in the background (its stdout, with
# VIEWERUP/VIEWERDOWN, goes straight to the serial port), records its pid in
# $VRUN_VIEWER_PID and, once it exits, its status in $VRUN_VIEWER_EXIT.
# Exits non-zero after a VRUNERROR line; /init then powers off.

SERIAL=${VRUN_SERIAL:-/dev/ttyS0}
CFGDISK=${VRUN_CFGDISK:-/dev/vda}
DATA=${VRUN_DATA:-/data}
VIEWER_PID=${VRUN_VIEWER_PID:-/run/viewer.pid}
VIEWER_EXIT=${VRUN_VIEWER_EXIT:-/run/viewer.exit}
CFG=/cfg
LOG=/var/log/viewer.log
export NO_COLOR=1   # plain text in the viewer's log

ev() { printf '%s\n' "$*" > "$SERIAL"; }
errline() { # the viewer's one error line ("viewer: ..."), else the last line
    tr -d '\000-\011\013-\037\177' | sed -n '/./h; /^viewer: /{h;x;p;q;}; ${x;p;}' | tail -n 1
}
fail() { ev "VRUNERROR $*"; exit 1; }

ev RUNSHSTART

mkdir -p "$CFG" "$DATA" "$(dirname "$LOG")"
# The configuration disk is a plain ustar archive from offset 0.
if ! err=$(tar -xf "$CFGDISK" -C "$CFG" 2>&1); then
    fail "configuration disk is not a tar archive: $(printf '%s\n' "$err" | errline)"
fi
[ -f "$CFG/run.json" ] || fail "run.json missing from the configuration disk"

if ! err=$(viewer check --config "$CFG/run.json" 2>&1 >/dev/null); then
    line=$(printf '%s\n' "$err" | errline)
    fail "${line:-viewer check failed}"
fi

if [ -e "$CFG/viewerdb.archive" ]; then
    if ! err=$(viewer import --data "$DATA" "$CFG/viewerdb.archive" 2>&1 >/dev/null); then
        line=$(printf '%s\n' "$err" | errline)
        fail "viewer import failed: ${line:-exit status non-zero}"
    fi
    rm -f "$CFG/viewerdb.archive"   # free the RAM it used
    ev DBRESTORED
else
    ev DBFRESH
fi

# The viewer reads address, port and everything else from run.json.
rm -f "$VIEWER_PID" "$VIEWER_EXIT"
(
    viewer serve --config "$CFG/run.json" --data "$DATA" > "$SERIAL" 2>> "$LOG" &
    echo $! > "$VIEWER_PID.tmp" && mv "$VIEWER_PID.tmp" "$VIEWER_PID"
    wait $!
    echo $? > "$VIEWER_EXIT.tmp" && mv "$VIEWER_EXIT.tmp" "$VIEWER_EXIT"
) </dev/null >/dev/null 2>&1 &
n=0
while [ ! -s "$VIEWER_PID" ]; do
    [ "$n" -ge 100 ] && fail "viewer serve did not start"
    usleep 100000; n=$((n + 1))
done
exit 0
