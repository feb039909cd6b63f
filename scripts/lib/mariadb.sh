# Sourced by scripts and tests: a throwaway MariaDB server (Debian's mariadb-server) on a
# Unix socket, with SWAMP's viewer_instance table, the launch_viewer procedure and the
# vrun_launchviewer UDF loaded.
#   vrun_mariadb_start DIR
#       data directory DIR/data (owned by mysql; created unless it exists: then a restart), socket DIR/run/mysqld.sock, plugin
#       directory DIR/plugin, error log DIR/mariadbd.err; no TCP port (--skip-networking).
#       The server runs as the mysql user (started as root) with this shell's environment
#       (set VRUN_UDF_CONFIG before, for the UDF). root connects through the socket
#       (unix_socket authentication). PIDs go to DIR/pids.
#   vrun_mariadb_stop DIR
#       stops exactly the PIDs in DIR/pids (TERM, then KILL after 30 s).
#   vrun_mariadb_install_vrun DIR SO DATABASE
#       copies the UDF library SO into DIR/plugin, creates DATABASE with sql/mariadb/*.sql
#       in it, and loads the function (CREATE FUNCTION vrun_launchviewer ... SONAME).
#   vrun_mariadb DIR [ARGS...]   the mariadb client as root on DIR's socket.

source "$(dirname "${BASH_SOURCE[0]}")/pids.sh"

vrun_mariadb_say() { printf 'vrun-mariadb: %s\n' "$*" >&2; }

vrun_mariadb() {
  local dir=$1; shift
  mariadb --no-defaults --protocol=socket --socket="$dir/run/mysqld.sock" -uroot "$@"
}

vrun_mariadb_start() {
  local dir=$1
  # mysql must reach its files: DIR traversable, data and socket directories its own.
  install -d -m 0711 "$dir"
  install -d -o mysql -g mysql -m 0700 "$dir/data"
  install -d -o mysql -g mysql -m 0755 "$dir/run"
  install -d -m 0755 "$dir/plugin"
  # Its own temporary directory: servers bootstrapping side by side in a shared /tmp collide
  # on temporary table names ("Unknown table 'mysql.tmp_user_sys'").
  install -d -o mysql -g mysql -m 0700 "$dir/tmp"
  : >"$dir/pids"
  local opts=(--no-defaults --datadir="$dir/data" --tmpdir="$dir/tmp" --plugin-dir="$dir/plugin" --character-set-server=utf8mb4
    --innodb-buffer-pool-size=32M --innodb-log-file-size=16M --performance-schema=OFF)
  # A data directory from an earlier start is started again as it is (a restart).
  [ -d "$dir/data/mysql" ] || mariadb-install-db "${opts[@]}" --user=mysql --auth-root-authentication-method=socket \
    --skip-test-db >"$dir/install.log" 2>&1 \
    || { vrun_mariadb_say "mariadb-install-db failed:"; head -5 "$dir/install.log" >&2; return 1; }
  /usr/sbin/mariadbd "${opts[@]}" --user=mysql --socket="$dir/run/mysqld.sock" --skip-networking \
    --pid-file="$dir/run/mariadbd.pid" --log-error="$dir/mariadbd.err" </dev/null >/dev/null 2>&1 &
  echo $! >>"$dir/pids"
  for _ in $(seq 300); do
    if vrun_mariadb "$dir" -e 'SELECT 1' >/dev/null 2>&1; then
      vrun_mariadb_say "server up ($dir)"
      return 0
    fi
    kill -0 "$(tail -1 "$dir/pids")" 2>/dev/null || break
    sleep 0.1
  done
  vrun_mariadb_say "the server did not answer:"; tail -20 "$dir/mariadbd.err" >&2
  return 1
}

vrun_mariadb_stop() {
  # mariadbd may take a while to flush and exit: up to 30 s before KILL.
  vrun_stop_pids "$1/pids" 300
}

vrun_mariadb_install_vrun() {
  local dir=$1 so=$2 db=$3 f
  local sql; sql="$(cd "$(dirname "${BASH_SOURCE[0]}")/../../sql/mariadb" && pwd)"
  install -m 0644 "$so" "$dir/plugin/libvrun_udf.so"
  vrun_mariadb "$dir" -e "CREATE DATABASE IF NOT EXISTS \`$db\`" || return 1
  for f in "$sql"/*.sql; do
    vrun_mariadb "$dir" "$db" <"$f" || { vrun_mariadb_say "loading $f failed"; return 1; }
  done
}
