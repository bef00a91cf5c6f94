#!/usr/bin/env bash
# One command from a fresh Debian 12 machine (as root, from the repository root) to the demo:
#   bash scripts/run-demo.sh [extra `divprune run` options, e.g. --set sample.count=24]
# Installs the dependencies, builds divprune (Release) in build/ and runs the embedded default configuration,
# configs/demo.yaml: baseline -> sensitivity sweep -> 48 random plans -> XGBoost predictor -> 3 search rounds on
# tiny-llama2-trained (../shared/assets), about 2 minutes on 2 cores. Tables on stdout, progress on stderr, the
# archive in runs/demo.h5 (a rerun resumes it; delete it to start over), plots in runs/demo-plots/.
# DIVPRUNE_CUDA=OFF skips the CUDA backend (it is built by default when /usr/local/cuda is present).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
bash scripts/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DDIVPRUNE_CUDA="${DIVPRUNE_CUDA:-ON}"
cmake --build build -j "$(nproc)" --target divprune
start=$(date +%s)
build/src/divprune run configs/demo.yaml --threads "$(nproc)" "$@"
echo "demo: whole pipeline in $(( $(date +%s) - start )) s on $(nproc) cores" >&2
/usr/bin/python3 analysis/plots.py runs/demo.h5 --out runs/demo-plots
