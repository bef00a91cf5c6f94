#!/usr/bin/env bash
# Validates the run's configuration on the login node, then submits: a typo in the config or a missing plan
# file fails here, in a second, instead of after the queue wait.
#   DIVPRUNE_CONFIG=configs/x.yaml slurm/submit.sh [sbatch options] slurm/SCRIPT.sbatch [divprune run options]
# e.g. DIVPRUNE_CONFIG=configs/tiny-eval.yaml slurm/submit.sh --ntasks=4 slurm/single-node.sbatch --set sample.count=8
# The check is `divprune run --check-config CONFIG [--set ...]` (config, plans, stage sections and input paths;
# no archive, no weights, at tp 1). DIVPRUNE_HOME is set to this repository for the job, so the scripts find
# it wherever sbatch runs them from; DIVPRUNE_ENV_SCRIPT (if set) is sourced here too, before the check.
set -euo pipefail
DIVPRUNE_HOME="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export DIVPRUNE_HOME
source "$DIVPRUNE_HOME/slurm/common.sh"

sbatch_args=()
while [[ $# -gt 0 && "$1" != *.sbatch ]]; do
  sbatch_args+=("$1")
  shift
done
[[ $# -gt 0 ]] || divprune_die "usage: DIVPRUNE_CONFIG=CONFIG $0 [sbatch options] slurm/SCRIPT.sbatch [divprune run options]"
script="$1"
shift
[[ -f "$script" ]] || divprune_die "sbatch script $script not found"

divprune_load_environment
divprune_check_inputs
# The job resolves a relative config against its submission folder, which is this one: make it absolute.
DIVPRUNE_CONFIG="$(cd "$(dirname "$DIVPRUNE_CONFIG")" && pwd)/$(basename "$DIVPRUNE_CONFIG")"
export DIVPRUNE_CONFIG

# Only --set changes what the job validates; --tp/--backend/--threads describe the allocation the job gets.
check_args=()
args=("$@")
for ((i = 0; i < ${#args[@]}; ++i)); do
  case "${args[i]}" in
    --set) check_args+=(--set "${args[i + 1]:-}"); ((++i)) ;;
    --set=*) check_args+=("${args[i]}") ;;
  esac
done
echo "divprune-slurm: checking $DIVPRUNE_CONFIG" >&2
"$DIVPRUNE_BIN" run --check-config "$DIVPRUNE_CONFIG" "${check_args[@]}" >&2 ||
  divprune_die "$DIVPRUNE_CONFIG did not pass divprune run --check-config (above): not submitted"
exec sbatch "${sbatch_args[@]}" "$script" "$@"
