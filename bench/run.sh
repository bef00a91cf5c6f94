#!/usr/bin/env bash
# The throughput benchmark in one call, from anywhere (it works in the repository root).
#
#   bench/run.sh         GPU: configure + build Release with CUDA in build-gpu, run the GPU tests
#                        (ctest -L gpu), bench_forward --backend cuda --preset 7b, bench/torch_reference.py
#                        (eager + torch.compile), and write bench/results/<UTC date>-<device>.json with every
#                        number and the ratios. Without a visible GPU it stops after the build (exit 3).
#   bench/run.sh --cpu   CPU only: build bench_forward without CUDA in build-bench-cpu, run the tiny preset on
#                        the CPU backend, write bench/results/<UTC date>-cpu-<cpu>.json. No torch needed.
#
# Environment (all optional):
#   BUILD_DIR      build directory (default build-gpu, or build-bench-cpu with --cpu)
#   SKIP_BUILD=1   use BUILD_DIR as it is (e.g. a build made earlier in the same session)
#   SKIP_TESTS=1   do not run the GPU tests
#   JOBS           parallel build jobs (default: nproc)
#   CUDA_ARCHS     CMAKE_CUDA_ARCHITECTURES (default 90: H100/H200)
#   SEQUENCES, SEQ_LEN, WARMUP, REPEAT   the workload (default 16, 512, 1, 3)
#   PRESET         bench_forward preset (default 7b on GPU, tiny with --cpu)
#   TORCH_MODES    modes of torch_reference.py (default eager,compile)
#   TORCH_BATCH    sequences per torch forward call (default: all of them)
#   TORCH_COMPILE_MODE   torch.compile mode (default max-autotune)
set -euo pipefail

usage() { sed -n '2,/^set -e/p' "${BASH_SOURCE[0]}" | grep '^#' | sed 's/^# \{0,1\}//'; }

mode=gpu
for arg in "$@"; do
  case "$arg" in
    --cpu) mode=cpu ;;
    -h | --help) usage; exit 0 ;;
    *) echo "bench/run.sh: unknown argument '$arg' (try --help)" >&2; exit 2 ;;
  esac
done

cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$(pwd)
python=(/usr/bin/env python3)
jobs=${JOBS:-$(nproc)}
sequences=${SEQUENCES:-16}
seq_len=${SEQ_LEN:-512}
warmup=${WARMUP:-1}
repeat=${REPEAT:-3}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

log() { printf '\n== bench/run.sh: %s\n' "$*"; }
fail_configure() {
  echo "bench/run.sh: configuring $1 failed (CMake's log is above). If a package was not found: divprune needs" >&2
  echo "  its C++ dependencies (scripts/install-deps.sh: MPI, HDF5, yaml-cpp, CLI11, fmt, spdlog, nlohmann-json," >&2
  echo "  sentencepiece, OpenBLAS, XGBoost, GoogleTest) on this machine; see bench/README.md." >&2
  exit 4
}

if [[ $mode == cpu ]]; then
  build=${BUILD_DIR:-build-bench-cpu}
  preset=${PRESET:-tiny}
  if [[ -z ${SKIP_BUILD:-} ]]; then
    log "configure + build bench_forward (CPU only) in $build"
    cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DDIVPRUNE_CUDA=OFF -DDIVPRUNE_TESTS=OFF \
      -DDIVPRUNE_BENCH=ON >"$work/configure.log" 2>&1 || { cat "$work/configure.log" >&2; fail_configure "$build"; }
    cmake --build "$build" -j"$jobs" --target bench_forward
  fi
  log "bench_forward --backend cpu --preset $preset"
  "$build/bench/bench_forward" --backend cpu --preset "$preset" --sequences "$sequences" --seq-len "$seq_len" \
    --warmup "$warmup" --repeat "$repeat" --json "$work/divprune.json"
  bench_rc=0
  tests_rc=skipped
  torch_rc=skipped
else
  build=${BUILD_DIR:-build-gpu}
  preset=${PRESET:-7b}
  if [[ -z ${SKIP_BUILD:-} ]]; then
    log "configure + build Release with CUDA in $build"
    cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DDIVPRUNE_CUDA=ON -DDIVPRUNE_BENCH=ON \
      -DCMAKE_CUDA_ARCHITECTURES="${CUDA_ARCHS:-90}" >"$work/configure.log" 2>&1 ||
      { cat "$work/configure.log" >&2; fail_configure "$build"; }
    cmake --build "$build" -j"$jobs"
  fi
  if [[ ! -d "$build/kernels/cuda" ]]; then
    echo "bench/run.sh: $build has no CUDA backend (no CUDA toolkit found, or DIVPRUNE_CUDA=OFF): nothing to measure" >&2
    exit 3
  fi
  if ! gpus=$(nvidia-smi -L 2>/dev/null) || [[ -z $gpus ]]; then
    echo "bench/run.sh: built $build, but no NVIDIA GPU is visible here (nvidia-smi -L found none)." >&2
    echo "  The GPU tests and the CUDA benchmark need one; 'bench/run.sh --cpu' measures the CPU backend." >&2
    exit 3
  fi
  echo "$gpus"

  tests_rc=skipped
  if [[ -z ${SKIP_TESTS:-} ]]; then
    log "GPU tests: ctest --test-dir $build -L gpu"
    set +e
    ctest --test-dir "$build" -L gpu --output-on-failure
    tests_rc=$?
    set -e
  fi

  log "bench_forward --backend cuda --preset $preset"
  set +e
  "$build/bench/bench_forward" --backend cuda --preset "$preset" --sequences "$sequences" --seq-len "$seq_len" \
    --warmup "$warmup" --repeat "$repeat" --json "$work/divprune.json"
  bench_rc=$?
  set -e

  log "torch_reference.py --preset $preset (modes ${TORCH_MODES:-eager,compile})"
  torch_args=(--preset "$preset" --sequences "$sequences" --seq-len "$seq_len" --warmup "$warmup" --repeat "$repeat"
              --modes "${TORCH_MODES:-eager,compile}" --compile-mode "${TORCH_COMPILE_MODE:-max-autotune}"
              --json "$work/torch.json")
  [[ -n ${TORCH_BATCH:-} ]] && torch_args+=(--batch "$TORCH_BATCH")
  set +e
  PYTHONUNBUFFERED=1 "${python[@]}" bench/torch_reference.py "${torch_args[@]}"
  torch_rc=$?
  set -e
fi

log "results"
mkdir -p bench/results
# Combine both JSON files into one results file; print the markdown table and the ratio line.
"${python[@]}" - "$work" "$root" "$mode" "$tests_rc" "$bench_rc" "$torch_rc" <<'PY'
import datetime, json, os, re, subprocess, sys

work, root, mode, tests_rc, bench_rc, torch_rc = sys.argv[1:7]

def load(name):
    path = os.path.join(work, name)
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)

def git(*args):
    try:
        return subprocess.run(["git", "-C", root, *args], capture_output=True, text=True, check=True).stdout.strip()
    except Exception:
        return None

divprune, torch_ref = load("divprune.json"), load("torch.json")
device = (divprune or {}).get("device") or (torch_ref or {}).get("device") or "unknown"
slug = re.sub(r"[^a-z0-9]+", "-", device.lower()).strip("-") or "unknown"
if mode == "cpu":
    slug = "cpu-" + slug
now = datetime.datetime.now(datetime.timezone.utc)
path = os.path.join(root, "bench", "results", f"{now:%Y-%m-%d}-{slug}.json")
if os.path.exists(path):  # a second run on the same day keeps the first
    path = os.path.join(root, "bench", "results", f"{now:%Y-%m-%d-%H%M%S}-{slug}.json")

def code(rc):
    return None if rc == "skipped" else int(rc)

modes = (torch_ref or {}).get("modes", {})
ours = (divprune or {}).get("tokens_per_s")
ratios = {}
for key, mode_name in (("vs_eager", "eager"), ("vs_compile", "compile")):
    theirs = modes.get(mode_name, {}).get("tokens_per_s")
    ratios[key] = ours / theirs if ours and theirs else None

dirty = git("status", "--porcelain")
result = {
    "date_utc": now.isoformat(timespec="seconds"),
    "mode": mode,
    "device": device,
    "git_commit": git("rev-parse", "HEAD"),
    "git_dirty": bool(dirty) if dirty is not None else None,
    "exit_codes": {"gpu_tests": code(tests_rc), "bench_forward": code(bench_rc), "torch_reference": code(torch_rc)},
    "divprune": divprune,
    "torch_reference": torch_ref,
    "ratio_tokens_per_s": ratios,
}
with open(path, "w") as f:
    json.dump(result, f, indent=2)
    f.write("\n")

def fmt(v, spec):
    return format(v, spec) if isinstance(v, (int, float)) else "n/a"

rows = []
if divprune:
    rows.append((f"divprune ({divprune['backend']}, {divprune['preset']})", divprune))
for name, r in modes.items():
    label = "torch eager (sdpa)" if name == "eager" else f"torch.compile ({r.get('compile_mode', '')})"
    rows.append((label, r))
print(f"device: {device}; {now:%Y-%m-%d} UTC; commit {result['git_commit'] or 'unknown'}"
      + (" (dirty tree)" if result["git_dirty"] else ""))
print()
print("| implementation | tokens/s | TFLOP/s | ms / sequence | peak device MiB |")
print("|---|---:|---:|---:|---:|")
for label, r in rows:
    print(f"| {label} | {fmt(r.get('tokens_per_s'), ',.0f')} | {fmt(r.get('tflops'), '.2f')} | "
          f"{fmt(r.get('ms_per_sequence'), '.2f')} | {fmt(r.get('peak_device_memory_mib'), ',.0f')} |")
print()
def ratio(v):
    return f"{v:.2f}×" if isinstance(v, float) else "n/a (no torch result)"
print(f"ratio vs eager: {ratio(ratios['vs_eager'])}")
print(f"ratio vs torch.compile: {ratio(ratios['vs_compile'])}")
print(f"\nwrote {os.path.relpath(path, root)}")
PY

status=0
for name in tests_rc bench_rc torch_rc; do
  value=${!name}
  if [[ $value != skipped && $value != 0 ]]; then
    echo "bench/run.sh: ${name%_rc} exited with $value" >&2
    status=1
  fi
done
exit $status
