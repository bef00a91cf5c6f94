# Sourced by the sbatch scripts: one place for the environment of a divprune job.
# DIVPRUNE_BIN   the divprune binary (default: build/src/divprune beside this folder)
# DIVPRUNE_CONFIG the run's YAML config (required)
# DIVPRUNE_TP    tensor-parallel ranks per replica (default: GPUs per node)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
DIVPRUNE_BIN="${DIVPRUNE_BIN:-$here/../build/src/divprune}"
: "${DIVPRUNE_CONFIG:?set DIVPRUNE_CONFIG to the YAML config of the run}"
[ -x "$DIVPRUNE_BIN" ] || { echo "divprune binary not found at $DIVPRUNE_BIN (set DIVPRUNE_BIN)" >&2; exit 2; }
[ -f "$DIVPRUNE_CONFIG" ] || { echo "config $DIVPRUNE_CONFIG not found" >&2; exit 2; }
# One BLAS thread per rank on GPU jobs: the CPU only feeds the GPU.
export OPENBLAS_NUM_THREADS="${OPENBLAS_NUM_THREADS:-1}"
