# Sourced by scripts and tests: a throwaway Slurm cluster on this one host.
#   vrun_slurm_start DIR NODES [CPUS] [MEM_MIB]
#       writes DIR/slurm.conf for NODES nodes (n1..nN) on 127.0.0.1, each with its own port
#       and spool directory, starts a munged of its own (as the munge user, on a socket in
#       DIR, so a host's munged is neither needed nor touched), slurmctld and one slurmd per
#       node, and waits until every node is idle. PIDs go to DIR/pids.
#   vrun_slurm_stop DIR
#       stops exactly the PIDs in DIR/pids (TERM, then KILL after 10 s).
#   vrun_slurm_node_stop DIR NODE   stops one node's slurmd (a lost hypervisor).
#   vrun_slurm_node_start DIR NODE  starts it again (it then kills the steps it lost).
# VRUN_SLURMD_TIMEOUT (default 30): seconds before a silent slurmd's node is declared down.
# Client commands need SLURM_CONF=DIR/slurm.conf. Facts behind the settings:
# ../shared/reference/slurm-on-one-host.md (no cgroups, no accounting; MailProg must exist).

source "$(dirname "${BASH_SOURCE[0]}")/pids.sh"

vrun_slurm_say() { printf 'vrun-slurm: %s\n' "$*" >&2; }

# A free TCP port on 127.0.0.1.
vrun_slurm_free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

vrun_slurm_start() {
  local dir=$1 nodes=$2 cpus=${3:-1} mem=${4:-1024}
  local host i
  host=$(hostname -s)
  install -d -m 0755 "$dir" "$dir/ctld" "$dir/log"
  # munged wants its socket directory searchable by all (clients connect as any user).
  install -d -o munge -g munge -m 0755 "$dir/munge"
  : >"$dir/pids"
  # munged: its own key copy, socket, pid and log, all owned by munge (it refuses otherwise).
  install -o munge -g munge -m 0400 /etc/munge/munge.key "$dir/munge/munge.key"
  runuser -u munge -- /usr/sbin/munged --socket="$dir/munge/munge.socket" --key-file="$dir/munge/munge.key" \
    --pid-file="$dir/munge/munged.pid" --log-file="$dir/munge/munged.log" --seed-file="$dir/munge/munged.seed" \
    || { vrun_slurm_say "munged did not start"; return 1; }
  for _ in $(seq 50); do [ -s "$dir/munge/munged.pid" ] && break; sleep 0.1; done
  cat "$dir/munge/munged.pid" >>"$dir/pids"
  local ctld_port; ctld_port=$(vrun_slurm_free_port)
  {
    echo "ClusterName=vrun-test"
    echo "SlurmctldHost=$host(127.0.0.1)"
    echo "SlurmctldPort=$ctld_port"
    echo "SlurmUser=root"
    echo "SlurmdUser=root"
    echo "AuthType=auth/munge"
    echo "AuthInfo=socket=$dir/munge/munge.socket"
    echo "CredType=cred/munge"
    echo "StateSaveLocation=$dir/ctld"
    echo "SlurmdSpoolDir=$dir/spool/%n"
    echo "SlurmctldPidFile=$dir/slurmctld.pid"
    echo "SlurmdPidFile=$dir/slurmd.%n.pid"
    echo "SlurmctldLogFile=$dir/log/slurmctld.log"
    echo "SlurmdLogFile=$dir/log/slurmd.%n.log"
    echo "ProctrackType=proctrack/linuxproc"
    echo "TaskPlugin=task/none"
    echo "JobAcctGatherType=jobacct_gather/none"
    echo "AccountingStorageType=accounting_storage/none"
    echo "SelectType=select/cons_tres"
    echo "SelectTypeParameters=CR_Core_Memory"
    echo "ReturnToService=2"
    echo "MpiDefault=none"
    echo "MailProg=/bin/true"
    echo "SlurmdTimeout=${VRUN_SLURMD_TIMEOUT:-30}"
    # vruntask's teardown after SIGTERM (power button, up to its 60 s stop timeout, then the
    # database stored) must end before Slurm's SIGKILL.
    echo "KillWait=90"
    echo "MinJobAge=300"
    # A submitted batch job is not placed at submit time: slurmctld's background loop, which
    # wakes once a second, schedules it at its first wake at least batch_sched_delay (default
    # 3 s) after the previous scheduling pass; with the full-queue pass every sched_interval
    # that made sbatch -> RUNNING 0.2-2.8 s. batch_sched_delay=0: the next wake (0-1 s).
    # A job ending starts the queued ones at once (epilog complete calls the scheduler).
    echo "SchedulerParameters=sched_interval=2,batch_sched_delay=0"
    local names=""
    for i in $(seq "$nodes"); do
      install -d -m 0755 "$dir/spool/n$i"
      echo "NodeName=n$i NodeHostname=localhost NodeAddr=127.0.0.1 Port=$(vrun_slurm_free_port) CPUs=$cpus RealMemory=$mem State=UNKNOWN"
      names="$names${names:+,}n$i"
    done
    echo "PartitionName=viewers Nodes=$names Default=YES MaxTime=INFINITE State=UP"
  } >"$dir/slurm.conf"
  export SLURM_CONF="$dir/slurm.conf"
  /usr/sbin/slurmctld -D -i -f "$dir/slurm.conf" >"$dir/log/slurmctld.out" 2>&1 &
  echo $! >>"$dir/pids"
  for i in $(seq "$nodes"); do
    /usr/sbin/slurmd -D -N "n$i" -f "$dir/slurm.conf" >"$dir/log/slurmd.n$i.out" 2>&1 &
    echo $! >"$dir/slurmd.n$i.ownpid"
    echo $! >>"$dir/pids"
  done
  local idle
  for _ in $(seq 300); do
    idle=$(sinfo -h -N -o '%T' 2>/dev/null | grep -c '^idle$')
    [ "$idle" = "$nodes" ] && { vrun_slurm_say "cluster up: $nodes nodes idle ($dir)"; return 0; }
    sleep 0.1
  done
  vrun_slurm_say "nodes did not become idle:"; sinfo -N >&2; tail -5 "$dir"/log/*.log >&2
  return 1
}

vrun_slurm_stop() {
  vrun_stop_pids "$1/pids" 100
}

vrun_slurm_node_stop() {
  local dir=$1 node=$2
  kill -KILL "$(cat "$dir/slurmd.$node.ownpid")" 2>/dev/null
}

vrun_slurm_node_start() {
  local dir=$1 node=$2
  SLURM_CONF="$dir/slurm.conf" /usr/sbin/slurmd -D -N "$node" -f "$dir/slurm.conf" >>"$dir/log/slurmd.$node.out" 2>&1 &
  echo $! >"$dir/slurmd.$node.ownpid"
  echo $! >>"$dir/pids"
}
