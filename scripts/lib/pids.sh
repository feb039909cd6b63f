# Sourced by scripts/lib/*.sh: stopping exactly the processes a script started.
#   vrun_stop_pids FILE [TENTHS]   TERM every PID listed in FILE (one per line), wait up to
#                                  TENTHS tenths of a second (default 100) for all to exit,
#                                  KILL what is left, then empty FILE.
vrun_stop_pids() {
  local file=$1 tenths=${2:-100} pid
  [ -f "$file" ] || return 0
  for pid in $(cat "$file"); do kill -TERM "$pid" 2>/dev/null; done
  for _ in $(seq "$tenths"); do
    local alive=0
    for pid in $(cat "$file"); do kill -0 "$pid" 2>/dev/null && alive=1; done
    [ $alive = 0 ] && break
    sleep 0.1
  done
  for pid in $(cat "$file"); do kill -KILL "$pid" 2>/dev/null; done
  : >"$file"
}
