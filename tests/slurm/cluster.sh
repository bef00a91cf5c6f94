# Sourced by tests/slurm/test_slurm_requeue.sh: a throwaway single-machine Slurm cluster in a temp folder.
# munged (own key and socket), slurmctld -D and slurmd -D with a generated slurm.conf on non-default ports; one
# node "localhost" with this machine's CPUs and memory. Everything it starts is recorded by pid and stopped by
# cluster_stop (the caller traps it on EXIT). Needs root (SlurmUser=root) and Debian's slurm-wlm and munge.
CLUSTER_PIDS=()

cluster_log() { echo "slurm-test: $*" >&2; }

# cluster_start DIR: writes DIR/{munge,slurm.conf,state,spool,log}, starts the daemons, waits for the node.
cluster_start() {
  local dir="$1" cpus mem port
  mkdir -p "$dir"/{munge,state,spool,log}
  chmod 711 "$dir/munge"
  # A fresh 1 KiB key, readable by root only (munged refuses a key others can read).
  head -c 1024 /dev/urandom >"$dir/munge/munge.key"
  chmod 400 "$dir/munge/munge.key"
  munged --foreground --force --key-file="$dir/munge/munge.key" --socket="$dir/munge/munge.sock" \
    --pid-file="$dir/munge/munged.pid" --seed-file="$dir/munge/munged.seed" --log-file="$dir/log/munged.log" >"$dir/log/munged.stdout" 2>&1 &
  CLUSTER_PIDS+=($!)
  cpus="$(nproc)"
  # RealMemory a little below what the machine reports, so slurmd never finds less than configured.
  mem=$(( $(awk '/MemTotal/ {print int($2 / 1024)}' /proc/meminfo) * 9 / 10 ))
  # Ports away from the defaults (6817/6818) and from another test run's (pid-derived offset).
  port=$(( 17000 + ($$ % 500) * 2 ))
  cat >"$dir/slurm.conf" <<CONF
ClusterName=divprunetest
SlurmctldHost=localhost
SlurmctldPort=$port
SlurmdPort=$((port + 1))
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
# Short credential lifetime: it is also how long a requeued job waits before it may start again (120 s default).
AuthInfo=socket=$dir/munge/munge.sock,cred_expire=10
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool/%n
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
MpiDefault=none
JobRequeue=1
ReturnToService=2
SchedulerType=sched/builtin
# The main scheduling loop every 2 s (60 s by default): a requeued job starts again as soon as it may.
SchedulerParameters=sched_interval=2
KillWait=10
MinJobAge=3600
InactiveLimit=0
MailProg=/bin/true
JobCompType=jobcomp/none
AccountingStorageType=accounting_storage/none
NodeName=localhost NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=test Nodes=localhost Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO
CONF
  export SLURM_CONF="$dir/slurm.conf"
  slurmctld -D -i -f "$SLURM_CONF" >"$dir/log/slurmctld.stdout" 2>&1 &
  CLUSTER_PIDS+=($!)
  slurmd -D -N localhost -f "$SLURM_CONF" >"$dir/log/slurmd.stdout" 2>&1 &
  CLUSTER_PIDS+=($!)
  local waited=0 state=""
  while (( waited < 60 )); do
    state="$(sinfo -h -n localhost -o %T 2>/dev/null || true)"
    [[ "$state" == idle ]] && { cluster_log "node idle after ${waited} s (ports $port/$((port + 1)))"; return 0; }
    sleep 1
    waited=$((waited + 1))
  done
  cluster_log "the node did not become idle in 60 s (state '$state'); logs:"
  tail -n 30 "$dir"/log/*.log >&2 || true
  return 1
}

# Stops every daemon cluster_start started (by pid: TERM, then KILL after 10 s) and the jobs' leftovers.
cluster_stop() {
  local pid i
  for pid in "${CLUSTER_PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for ((i = 0; i < 20; ++i)); do
    local alive=0
    for pid in "${CLUSTER_PIDS[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
    (( alive )) || break
    sleep 0.5
  done
  for pid in "${CLUSTER_PIDS[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
  CLUSTER_PIDS=()
}
