#!/usr/bin/env bash
# One command from a fresh Debian 12 machine (as root, from the repository root) to the demo:
#   bash scripts/run-demo.sh [extra demo options, e.g. --seed 7]
# Installs the dependencies, builds divprune (Release) in build/ and runs `divprune demo`, which writes the
# embedded default model to build/demo-model and prints its info, a greedy generation and a perplexity.
# DIVPRUNE_CUDA=OFF skips the CUDA backend (it is built by default when /usr/local/cuda is present).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
bash scripts/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DDIVPRUNE_CUDA="${DIVPRUNE_CUDA:-ON}"
cmake --build build -j "$(nproc)" --target divprune
build/src/divprune demo --out-dir build/demo-model "$@"
