# Sourced by slurm/*.sbatch and slurm/submit.sh: one place for how a divprune job is started under Slurm.
#
# Environment (all optional except DIVPRUNE_CONFIG):
#   DIVPRUNE_CONFIG      the run's YAML config (required)
#   DIVPRUNE_HOME        the divprune repository (found by the sbatch scripts; see divprune_find_home there)
#   DIVPRUNE_BIN         the divprune binary (default: $DIVPRUNE_HOME/build/src/divprune)
#   DIVPRUNE_BACKEND     cpu or cuda (default: cuda when the job has GPUs, cpu otherwise)
#   DIVPRUNE_TP          tensor-parallel ranks per replica (default: GPUs per node on GPU jobs, 1 on CPU jobs)
#   DIVPRUNE_ENV_SCRIPT  a file sourced before anything runs (module load ..., a virtualenv, LD_LIBRARY_PATH)
#   DIVPRUNE_MPI         srun's --mpi plugin (default: pmix)
#   DIVPRUNE_REQUEUE     1 (default): requeue the job when divprune stops on a signal (exit 75/76); 0: do not
#   DIVPRUNE_MAX_IDLE_RESTARTS  starts in a row that archive nothing before the job is no longer requeued (2)
# Options given to the script (sbatch slurm/x.sbatch --backend cpu --tp 2 ...) go to `divprune run` and win over
# the derived ones: --backend, --tp and --threads are only added when the user did not give them.
set -euo pipefail

# divprune's exit code for "stopped on SIGTERM/SIGUSR1 between work units, archive consistent, resumable"
# (src/core/stop_signal.hpp).
DIVPRUNE_EXIT_INTERRUPTED=75
# The same, but the start archived nothing (no plan, no finished stage).
DIVPRUNE_EXIT_NO_PROGRESS=76

divprune_die() {
  echo "divprune-slurm: error: $*" >&2
  exit 2
}

# Only when the caller did not already pass the option (CLI11 rejects a second --backend/--tp).
divprune_has_option() {
  local name="$1"
  shift
  local arg
  for arg in "$@"; do
    [[ "$arg" == "$name" || "$arg" == "$name="* ]] && return 0
  done
  return 1
}

# The value of option $1 in the remaining arguments ("--tp 2" or "--tp=2"), empty when absent.
divprune_option_value() {
  local name="$1"
  shift
  while [[ $# -gt 0 ]]; do
    case "$1" in
      "$name") echo "${2:-}"; return 0 ;;
      "$name="*) echo "${1#*=}"; return 0 ;;
    esac
    shift
  done
}

# GPUs this job has on its node: Slurm's count, else the devices CUDA was given, else 0.
divprune_gpus_on_node() {
  if [[ -n "${SLURM_GPUS_ON_NODE:-}" && "${SLURM_GPUS_ON_NODE}" =~ ^[0-9]+$ ]]; then
    echo "$SLURM_GPUS_ON_NODE"
  elif [[ -n "${CUDA_VISIBLE_DEVICES:-}" && "${CUDA_VISIBLE_DEVICES}" != "NoDevFiles" ]]; then
    tr ',' '\n' <<<"$CUDA_VISIBLE_DEVICES" | grep -c .
  else
    echo 0
  fi
}

divprune_load_environment() {
  if [[ -n "${DIVPRUNE_ENV_SCRIPT:-}" ]]; then
    [[ -f "$DIVPRUNE_ENV_SCRIPT" ]] || divprune_die "DIVPRUNE_ENV_SCRIPT=$DIVPRUNE_ENV_SCRIPT does not exist"
    # shellcheck disable=SC1090
    source "$DIVPRUNE_ENV_SCRIPT"
  fi
}

divprune_check_inputs() {
  : "${DIVPRUNE_HOME:?DIVPRUNE_HOME is not set (the sbatch scripts set it before sourcing common.sh)}"
  DIVPRUNE_BIN="${DIVPRUNE_BIN:-$DIVPRUNE_HOME/build/src/divprune}"
  [[ -n "${DIVPRUNE_CONFIG:-}" ]] ||
    divprune_die "set DIVPRUNE_CONFIG to the YAML config of the run (DIVPRUNE_CONFIG=configs/x.yaml sbatch ...)"
  [[ -x "$DIVPRUNE_BIN" ]] ||
    divprune_die "divprune binary not found at $DIVPRUNE_BIN (build it: cmake --build build; or set DIVPRUNE_BIN)"
  # A relative config is relative to the submission directory (where the user typed it).
  if [[ "$DIVPRUNE_CONFIG" != /* && -n "${SLURM_SUBMIT_DIR:-}" ]]; then
    DIVPRUNE_CONFIG="$SLURM_SUBMIT_DIR/$DIVPRUNE_CONFIG"
  fi
  [[ -f "$DIVPRUNE_CONFIG" ]] || divprune_die "config $DIVPRUNE_CONFIG not found"
}

# Sets DIVPRUNE_ARGS: `divprune run` arguments derived from the allocation, then the user's. Fails fast on a
# shape that cannot work.
divprune_build_args() {
  local gpus tasks tp backend
  gpus="$(divprune_gpus_on_node)"
  backend="$(divprune_option_value --backend "$@")"
  if [[ -z "$backend" ]]; then
    if [[ -n "${DIVPRUNE_BACKEND:-}" ]]; then backend="$DIVPRUNE_BACKEND"
    elif [[ "$gpus" -gt 0 ]]; then backend=cuda
    else backend=cpu
    fi
  fi
  [[ "$backend" == cpu || "$backend" == cuda ]] || divprune_die "backend must be cpu or cuda, not '$backend'"
  if [[ "$backend" == cuda && "$gpus" -eq 0 ]]; then
    divprune_die "backend cuda but the job has no GPU (submit with --gpus-per-node=N, or use DIVPRUNE_BACKEND=cpu)"
  fi
  tp="$(divprune_option_value --tp "$@")"
  if [[ -z "$tp" ]]; then
    if [[ -n "${DIVPRUNE_TP:-}" ]]; then tp="$DIVPRUNE_TP"
    elif [[ "$backend" == cuda ]]; then tp="$gpus"
    else tp=1
    fi
  fi
  [[ "$tp" =~ ^[1-9][0-9]*$ ]] || divprune_die "tp must be a positive integer, not '$tp'"
  tasks="${SLURM_NTASKS:-1}"
  if (( tasks % tp != 0 )); then
    divprune_die "the job has $tasks task(s), not a multiple of tp $tp: submit with --ntasks (or --ntasks-per-node x --nodes) a multiple of tp, or set DIVPRUNE_TP"
  fi
  # With block distribution a tp group stays on one node only if every node's task count is a multiple of tp
  # (SLURM_TASKS_PER_NODE looks like "8(x4)" or "3,2").
  local entry count
  IFS=',' read -r -a entries <<<"${SLURM_TASKS_PER_NODE:-$tasks}"
  for entry in "${entries[@]}"; do
    count="${entry%%(*}"
    if [[ "$count" =~ ^[0-9]+$ ]] && (( count % tp != 0 )); then
      echo "divprune-slurm: warning: a node runs $count task(s), not a multiple of tp $tp: a tensor-parallel group spans nodes (its all-reduces leave NVLink); use --ntasks-per-node a multiple of tp" >&2
      break
    fi
  done
  DIVPRUNE_ARGS=()
  divprune_has_option --backend "$@" || DIVPRUNE_ARGS+=(--backend "$backend")
  divprune_has_option --tp "$@" || DIVPRUNE_ARGS+=(--tp "$tp")
  if [[ "$backend" == cpu ]]; then
    # Each rank uses the cores Slurm gave its task.
    divprune_has_option --threads "$@" || DIVPRUNE_ARGS+=(--threads "${SLURM_CPUS_PER_TASK:-1}")
  else
    # One BLAS thread per rank on GPU jobs: the CPU only feeds the GPU.
    export OPENBLAS_NUM_THREADS="${OPENBLAS_NUM_THREADS:-1}"
  fi
  DIVPRUNE_ARGS+=("$@")
  echo "divprune-slurm: job ${SLURM_JOB_ID:-?} restart ${SLURM_RESTART_COUNT:-0}: $tasks task(s), backend $backend, tp $tp, $((tasks / tp)) replica(s), config $DIVPRUNE_CONFIG" >&2
}

# Runs `divprune run` under srun and returns its exit code. srun runs in the background so that the batch
# shell can take signals: TERM (preemption, grace-time cancellation) and USR1 (#SBATCH --signal=B:USR1@...)
# reach every rank as SIGUSR1, on which divprune stops between work units exactly as on SIGTERM. Not TERM:
# srun answers a SIGTERM of its own by killing its tasks with SIGKILL ("forcing job termination"), while it
# forwards SIGUSR1 to them unchanged.
divprune_srun() {
  local srun_pid rc
  # --mpi=pmix: Debian's Open MPI (and most distributions') only supports being started directly by srun
  # through PMIx; with the cluster default (often MpiDefault=none) or pmi2, MPI_Init aborts ("OMPI was not
  # built with SLURM's PMI support"). Block distribution keeps consecutive ranks (one tp group) on one node.
  srun --mpi="${DIVPRUNE_MPI:-pmix}" --kill-on-bad-exit=1 --distribution=block:block \
    "$DIVPRUNE_BIN" run "$DIVPRUNE_CONFIG" "${DIVPRUNE_ARGS[@]}" &
  srun_pid=$!
  trap 'echo "divprune-slurm: SIGTERM: asking divprune to stop after the work in flight" >&2; kill -USR1 '"$srun_pid"' 2>/dev/null || true' TERM
  trap 'echo "divprune-slurm: SIGUSR1 (time limit near): asking divprune to stop after the work in flight" >&2; kill -USR1 '"$srun_pid"' 2>/dev/null || true' USR1
  # `wait` returns early (status > 128) when a trapped signal arrives: wait again until srun has exited.
  while true; do
    rc=0
    wait "$srun_pid" || rc=$?
    kill -0 "$srun_pid" 2>/dev/null || break
  done
  trap - TERM USR1
  return "$rc"
}

# Consecutive starts of this job that stopped before archiving anything, kept in the job's Comment (it survives
# requeues; this overwrites a Comment of your own).
divprune_idle_restarts() {
  scontrol show job "$SLURM_JOB_ID" -o | grep -o 'Comment=divprune-idle-restarts=[0-9]*' | grep -o '[0-9]*$' || echo 0
}

divprune_requeue() {
  echo "divprune-slurm: requeueing job $SLURM_JOB_ID (restart count ${SLURM_RESTART_COUNT:-0})" >&2
  if scontrol requeue "$SLURM_JOB_ID"; then
    exit 0
  fi
  echo "divprune-slurm: scontrol requeue failed (job not requeueable, or being cancelled): resubmit to resume" >&2
}

# Maps divprune's exit code to the job's fate: 75 (stopped on a signal, resumable) requeues the job, which
# resumes from the archive on its next start; 76 (stopped before this start archived anything) too, but at most
# DIVPRUNE_MAX_IDLE_RESTARTS (default 2) times in a row: a unit of work longer than the warning before the
# time limit would otherwise requeue forever. Anything else is the job's exit code.
divprune_finish() {
  local rc="$1" idle
  if [[ "$rc" -ne "$DIVPRUNE_EXIT_INTERRUPTED" && "$rc" -ne "$DIVPRUNE_EXIT_NO_PROGRESS" ]]; then
    exit "$rc"
  fi
  if [[ "${DIVPRUNE_REQUEUE:-1}" == 0 || -z "${SLURM_JOB_ID:-}" ]]; then
    echo "divprune-slurm: divprune stopped cleanly (exit $rc): resubmit to resume from the archive" >&2
    exit "$rc"
  fi
  if [[ "$rc" -eq "$DIVPRUNE_EXIT_INTERRUPTED" ]]; then
    [[ "$(divprune_idle_restarts)" == 0 ]] || scontrol update JobId="$SLURM_JOB_ID" Comment="divprune-idle-restarts=0"
    divprune_requeue
    exit "$rc"
  fi
  idle=$(( $(divprune_idle_restarts) + 1 ))
  if (( idle >= ${DIVPRUNE_MAX_IDLE_RESTARTS:-2} )); then
    echo "divprune-slurm: error: $idle starts in a row were stopped before they archived anything: one unit of work (a plan on one replica) takes longer than this job gets between its start or warning and its end. Not requeued: give the job a longer --time, or an earlier warning (--signal=B:USR1@SECONDS), or more ranks per replica; the archive is consistent and a new submission resumes it" >&2
    exit "$rc"
  fi
  scontrol update JobId="$SLURM_JOB_ID" Comment="divprune-idle-restarts=$idle"
  divprune_requeue
  exit "$rc"
}

# The whole job: environment hook, checks, derived arguments, srun, requeue on a clean stop.
divprune_main() {
  divprune_load_environment
  divprune_check_inputs
  divprune_build_args "$@"
  echo "divprune-slurm: start $(date -Is) on $(hostname)" >&2
  local rc=0
  divprune_srun || rc=$?
  echo "divprune-slurm: divprune exited with $rc at $(date -Is)" >&2
  divprune_finish "$rc"
}
