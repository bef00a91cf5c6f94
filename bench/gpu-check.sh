#!/usr/bin/env bash
# The CUDA backend's whole check in one call on a bare GPU machine (issue 11): build, GPU tests, WikiText-2
# perplexity, CUDA-vs-CPU archives (1 rank and 2 replicas), bench_forward 7B with the PyTorch companion.
#
#   bench/gpu-check.sh [OUT_DIR]        results in OUT_DIR, else $OUT, else bench/results/gpu-<UTC date>
#   bench/gpu-check.sh --build-only     no GPU probe: unpack the carry, configure + build, stop (a CPU check of
#                                       the carry and the build; OUT_DIR may follow)
#
# No NVIDIA GPU visible (nvidia-smi -L lists none): a message and exit 3, before anything is built or written.
# Prepare the carry first on a machine with ../shared: scripts/prepare-gpu-carry.sh (it prints the run command).
#
# Every step is bounded by `timeout` and by one overall deadline, and a failed step does not stop later ones.
# Written to OUT_DIR: results.json (every number and each step's status), <step>.log, compare-*.json, bench.json.
# Exit: 0 every check passed, 1 some check failed (results.json says which), 3 no GPU, 4 configure/build failed.
#
# Environment (all optional):
#   GPU_CARRY        the carried folder (default .gpu-carry): assets.tar.gz or assets/, xgboost/ (dpkg -x tree)
#   BUILD_DIR        build directory (default build-gpu-check; kept between calls on a warm machine)
#   SKIP_BUILD=1     use BUILD_DIR as it is
#   JOBS             build jobs (default nproc)   CUDA_ARCHS  (default 90: H100/H200)
#   BUDGET_S         overall deadline in seconds (default 480); a step that cannot start in time is skipped (FAIL)
#   CPU_RANKS        ranks of the CPU reference run of configs/tiny-eval.yaml (default 6, in the background)
#   TORCH_COMPILE_MODE   torch.compile mode of the companion (default "default": max-autotune takes minutes)
#   PPL_REFERENCE    WikiText-2 perplexity of tiny-llama2-trained on the CPU backend (default 72.8221)
set -uo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$(pwd)
t0=$(date +%s)

build_only=0
out_arg=
for arg in "$@"; do
  case "$arg" in
    --build-only) build_only=1 ;;
    -h | --help) sed -n '2,/^set -uo/p' "${BASH_SOURCE[0]}" | grep '^#' | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) echo "bench/gpu-check.sh: unknown option '$arg' (try --help)" >&2; exit 2 ;;
    *) out_arg=$arg ;;
  esac
done

# ---- 0. a visible GPU, before anything else --------------------------------------------------------------
if [[ $build_only == 0 ]]; then
  if ! command -v nvidia-smi >/dev/null 2>&1; then
    echo "bench/gpu-check.sh: no GPU: nvidia-smi is not installed here. This check needs a visible NVIDIA GPU" >&2
    echo "  (run it on the lent GPU machine: see bench/README.md, 'GPU check'). Nothing was built or written." >&2
    exit 3
  fi
  if ! gpus=$(nvidia-smi -L 2>&1) || ! grep -q '^GPU ' <<<"$gpus"; then
    echo "bench/gpu-check.sh: no GPU: nvidia-smi -L lists no device (it said: ${gpus:-nothing})." >&2
    echo "  This check needs a visible NVIDIA GPU. Nothing was built or written." >&2
    exit 3
  fi
fi

out=${out_arg:-${OUT:-bench/results/gpu-$(date -u +%Y-%m-%d)}}
mkdir -p "$out" && out=$(cd "$out" && pwd)
carry=$(cd "${GPU_CARRY:-.gpu-carry}" 2>/dev/null && pwd) || carry=$root/${GPU_CARRY:-.gpu-carry}
build=${BUILD_DIR:-build-gpu-check}
jobs=${JOBS:-$(nproc)}
budget=${BUDGET_S:-480}
deadline=$((t0 + budget))
ppl_ref=${PPL_REFERENCE:-72.8221}
work=$root/$build/gpu-check-runs   # archives (~130 MB each) stay here, not in OUT
steps=$out/steps.tsv
: >"$steps"
if [[ $build_only == 0 ]]; then
  printf '%s\n' "$gpus" | tee "$out/nvidia-smi.txt"
  nvidia-smi >>"$out/nvidia-smi.txt" 2>&1 || true
fi

export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
export OMPI_MCA_btl_vader_single_copy_mechanism=none PYTHONUNBUFFERED=1
python=python3   # the one with torch on the GPU machine
# compare_archives.py needs h5py: the first Python that has it (the GPU machine's python3 does; Debian's here).
h5python=python3
for candidate in python3 /usr/bin/python3; do
  if "$candidate" -c 'import h5py' >/dev/null 2>&1; then h5python=$candidate; break; fi
done

log() { printf '\n== gpu-check [%4ds]: %s\n' "$(($(date +%s) - t0))" "$*"; }
# record NAME STATUS RC SECONDS: one row of steps.tsv (STATUS pass, fail or skip).
record() { printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" >>"$steps"; }
# step NAME CAP CMD...: runs CMD under timeout min(CAP, time left), output to OUT/NAME.log (and the console).
step() {
  local name=$1 cap=$2
  shift 2
  local left=$((deadline - $(date +%s)))
  local limit=$((cap < left ? cap : left))
  if ((limit < 20)); then
    log "$name: skipped, ${left}s left before the deadline (BUDGET_S=$budget)"
    record "$name" skip "" 0
    return 124
  fi
  log "$name (timeout ${limit}s): $*"
  local start rc
  start=$(date +%s.%N)
  timeout -k 10 "$limit" "$@" > >(tee "$out/$name.log") 2>&1
  rc=$?
  local seconds
  seconds=$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2f", b - a }')
  [[ $rc == 124 || $rc == 137 ]] && echo "gpu-check: $name timed out after ${limit}s" | tee -a "$out/$name.log"
  record "$name" "$([[ $rc == 0 ]] && echo pass || echo fail)" "$rc" "$seconds"
  return "$rc"
}

# ---- 1. the carry: assets and XGBoost ----------------------------------------------------------------------
log "carry: $carry"
if [[ ! -d $carry/assets && -f $carry/assets.tar.gz ]]; then
  mkdir -p "$carry/assets" && tar -C "$carry/assets" -xzf "$carry/assets.tar.gz" || { rm -rf "$carry/assets"; }
fi
if [[ -n ${DIVPRUNE_ASSETS:-} ]]; then
  assets=$DIVPRUNE_ASSETS
elif [[ -d $carry/assets ]]; then
  assets=$carry/assets
else
  assets=$root/../shared/assets
fi
missing=()
for f in tiny-llama2-trained/config.json tiny-llama2-mha/reference.h5 llama2-tokenizer.model \
         wikitext2.test.txt wikitext2.valid.txt; do
  [[ -e $assets/$f ]] || missing+=("$f")
done
if ((${#missing[@]})); then
  echo "bench/gpu-check.sh: the assets in $assets lack: ${missing[*]}. Run scripts/prepare-gpu-carry.sh on a" >&2
  echo "  machine with ../shared/assets and name .gpu-carry in the run's carry list." >&2
  record carry fail 1 0
else
  record carry pass 0 0
fi
export DIVPRUNE_ASSETS=$assets CI=true   # CI=true: a missing asset fails a test instead of skipping it

cmake_args=(-DCMAKE_BUILD_TYPE=Release -DDIVPRUNE_CUDA=ON -DDIVPRUNE_BENCH=ON -DDIVPRUNE_TESTS=ON
            -DCMAKE_CUDA_ARCHITECTURES="${CUDA_ARCHS:-90}")
if ! command -v nvcc >/dev/null 2>&1 && [[ -x /usr/local/cuda/bin/nvcc ]]; then
  cmake_args+=(-DCMAKE_CUDA_COMPILER=/usr/local/cuda/bin/nvcc)
fi
xgb=$carry/xgboost/usr
xgb_lib=$(dirname "$(find "$xgb" -name 'libxgboost.so*' 2>/dev/null | head -1)" 2>/dev/null)
if [[ -d $xgb/include/xgboost && -n $xgb_lib && -d $xgb_lib ]]; then
  # dpkg -x keeps the .so symlinks; recreate them if the transfer dropped them. The executables get an RPATH
  # (not RUNPATH: --disable-new-dtags), which also finds libdmlc.so.0 for libxgboost (RUNPATH would not).
  real=$(find "$xgb_lib" -maxdepth 1 -type f -name 'libxgboost.so.*' | head -1)
  [[ -n $real && ! -e $xgb_lib/libxgboost.so.0 ]] && ln -sf "$(basename "$real")" "$xgb_lib/libxgboost.so.0"
  [[ -n $real && ! -e $xgb_lib/libxgboost.so ]] && ln -sf "$(basename "$real")" "$xgb_lib/libxgboost.so"
  echo "XGBoost from the carry: $xgb_lib"
  cmake_args+=(-DXGBOOST_LIB="$xgb_lib/libxgboost.so" -DXGBOOST_INCLUDE="$xgb/include"
               -DCMAKE_PREFIX_PATH="$xgb" "-DCMAKE_EXE_LINKER_FLAGS=-Wl,--disable-new-dtags -Wl,-rpath,$xgb_lib -Wl,-rpath-link,$xgb_lib")
  export LD_LIBRARY_PATH=$xgb_lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
  export LIBRARY_PATH=$xgb_lib${LIBRARY_PATH:+:$LIBRARY_PATH}
else
  echo "no XGBoost in $carry/xgboost: CMake must find an installed one"
fi

# ---- 2. build only what the checks need ---------------------------------------------------------------------
targets=(divprune test_cuda_backend test_cuda_model bench_forward)
if [[ -z ${SKIP_BUILD:-} ]]; then
  if ! step configure 150 cmake -S . -B "$build" "${cmake_args[@]}"; then
    echo "bench/gpu-check.sh: configuring $build failed ($out/configure.log). A package CMake did not find must be" >&2
    echo "  installed there or carried (XGBoost: scripts/prepare-gpu-carry.sh)." >&2
    built=0
  elif [[ ! -d $build/kernels/cuda ]]; then
    echo "bench/gpu-check.sh: $build has no CUDA backend (CMake found no CUDA toolkit)" >&2
    record cuda_toolkit fail 1 0
    built=0
  else
    step build 360 cmake --build "$build" -j"$jobs" --target "${targets[@]}" && built=1 || built=0
  fi
else
  built=1
fi

summarize() {
  "$python" - "$out" "$root" "$ppl_ref" "$budget" "$(($(date +%s) - t0))" <<'PY'
import datetime, json, os, re, subprocess, sys
out, root, ppl_ref, budget, elapsed = sys.argv[1], sys.argv[2], float(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])

def text(name):
    try:
        with open(os.path.join(out, name), errors="replace") as f:
            return f.read()
    except OSError:
        return ""

def load(name):
    try:
        with open(os.path.join(out, name)) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None

steps = {}
for line in text("steps.tsv").splitlines():
    name, status, rc, seconds = (line.split("\t") + [""] * 4)[:4]
    steps[name] = {"status": status, "exit_code": int(rc) if rc.lstrip("-").isdigit() else None,
                   "seconds": float(seconds) if seconds else None}

checks = {}
# ctest -L gpu
log = text("ctest_gpu.log")
m = re.search(r"(\d+)% tests passed, (\d+) tests? failed out of (\d+)", log)
if m:
    total, failed = int(m.group(3)), int(m.group(2))
    checks["ctest_gpu"] = {"passed": total - failed, "failed": failed, "total": total,
                           "failed_tests": re.findall(r"^\s*\d+ - (\S+) \(", log, re.M),
                           "measured": sorted(set(re.findall(r"\[ measured \] ([^\n<]*)", log + text("ctest_gpu.xml")))),
                           "pass": failed == 0 and total > 0}
# divprune perplexity --backend cuda
log = text("perplexity_cuda.log")
m = re.findall(r"^ppl ([0-9.]+) tokens (\d+)", log, re.M)
if m:
    ppl, tokens = float(m[-1][0]), int(m[-1][1])
    wall = (steps.get("perplexity_cuda") or {}).get("seconds")
    inner = re.findall(r"in ([0-9.]+) s \(([0-9.]+) tokens/s\)", log)
    checks["perplexity_cuda"] = {
        "ppl": ppl, "tokens": tokens, "reference": ppl_ref, "rel_diff": ppl / ppl_ref - 1,
        "wall_s": wall, "tokens_per_s_wall": tokens / wall if wall else None,
        "eval_s": float(inner[-1][0]) if inner else None, "tokens_per_s_eval": float(inner[-1][1]) if inner else None,
        "pass": abs(ppl / ppl_ref - 1) <= 0.005}
for name in ("compare_cuda_vs_cpu", "compare_cuda_np2_vs_np1"):
    doc = load(name + ".json")
    if doc:
        checks[name] = {"verdict": doc["verdict"], "plans": doc["plans"], "failed_checks": doc["failed"],
                        "failed_rows": [r for r in doc["rows"] if r["status"] == "FAIL"],
                        "pass": doc["verdict"] == "PASS"}
bench, compile_ = load("bench.json"), load("torch_compile.json")
if bench or compile_:
    ours = ((bench or {}).get("divprune") or {}).get("tokens_per_s")
    modes = dict(((bench or {}).get("torch_reference") or {}).get("modes", {}))
    modes.update((compile_ or {}).get("modes", {}))
    ratio = {k: ours / modes[k]["tokens_per_s"] if ours and modes.get(k, {}).get("tokens_per_s") else None
             for k in ("eager", "compile")}
    checks["bench_forward_7b"] = {"device": (bench or {}).get("device"), "divprune_tokens_per_s": ours,
                                  "divprune_tflops": ((bench or {}).get("divprune") or {}).get("tflops"),
                                  "torch": {k: {"tokens_per_s": v.get("tokens_per_s"), "tflops": v.get("tflops"),
                                                "compile_mode": v.get("compile_mode")} for k, v in modes.items()},
                                  "ratio_vs_eager": ratio["eager"], "ratio_vs_compile": ratio["compile"],
                                  "pass": bool(ours)}

failed_steps = [n for n, s in steps.items() if s["status"] != "pass"]
failed_checks = [n for n, c in checks.items() if not c.get("pass")]
try:
    commit = subprocess.run(["git", "-C", root, "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
except OSError:
    commit = None
result = {"date_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
          "device": text("nvidia-smi.txt").splitlines()[0] if text("nvidia-smi.txt") else None,
          "git_commit": commit or None, "elapsed_s": elapsed, "budget_s": budget,
          "steps": steps, "checks": checks, "failed_steps": failed_steps, "failed_checks": failed_checks,
          "pass": not failed_steps and not failed_checks}
with open(os.path.join(out, "results.json"), "w") as f:
    json.dump(result, f, indent=2)
    f.write("\n")
print(json.dumps({k: result[k] for k in ("device", "elapsed_s", "failed_steps", "failed_checks", "pass")}, indent=1))
for name, c in checks.items():
    print(f"{name}: {'PASS' if c.get('pass') else 'FAIL'}  " +
          json.dumps({k: v for k, v in c.items() if k not in ("pass", "failed_rows", "torch", "measured")}))
sys.exit(0 if result["pass"] else 1)
PY
}

if [[ $built != 1 ]]; then
  log "the build failed: nothing to run ($out/build.log)"
  summarize
  exit 4
fi
if [[ $build_only == 1 ]]; then
  log "--build-only: built ${targets[*]} in $build"
  summarize
  exit $?
fi

# ---- 3. the checks ------------------------------------------------------------------------------------------
bin=$root/$build/src/divprune
A=$assets
mkdir -p "$work"
rm -f "$work"/*.h5
eval_args=(run configs/tiny-eval.yaml --set "assets=$A" -q)

# The CPU reference archive runs in the background on a few cores while the GPU steps run.
log "cpu reference: mpirun -np ${CPU_RANKS:-6} divprune run configs/tiny-eval.yaml --backend cpu (background)"
step tiny_eval_cpu 400 mpirun --oversubscribe -np "${CPU_RANKS:-6}" "$bin" "${eval_args[@]}" --backend cpu \
  --threads 1 --set "archive=$work/cpu.h5" >/dev/null 2>&1 &
cpu_pid=$!

step ctest_gpu 240 ctest --test-dir "$build" -L gpu --output-on-failure --timeout 230 \
  --output-junit "$out/ctest_gpu.xml"   # the XML keeps every test's output, passed ones too
step perplexity_cuda 150 "$bin" perplexity --backend cuda --model "$A/tiny-llama2-trained" \
  --tokenizer "$A/llama2-tokenizer.model" --text "$A/wikitext2.test.txt"
step tiny_eval_cuda 150 "$bin" "${eval_args[@]}" --backend cuda --set "archive=$work/cuda.h5"
step tiny_eval_cuda_np2 180 mpirun --oversubscribe -np 2 "$bin" "${eval_args[@]}" --backend cuda \
  --set "archive=$work/cuda-np2.h5"
log "waiting for the cpu reference"
wait "$cpu_pid"
step compare_cuda_vs_cpu 60 "$h5python" analysis/compare_archives.py "$work/cuda.h5" "$work/cpu.h5" \
  --json "$out/compare_cuda_vs_cpu.json"
step compare_cuda_np2_vs_np1 60 "$h5python" analysis/compare_archives.py "$work/cuda-np2.h5" "$work/cuda.h5" \
  --json "$out/compare_cuda_np2_vs_np1.json"

# bench_forward 7B + torch eager through bench/run.sh (it writes bench/results/<date>-<device>.json), then
# torch.compile on its own so that a slow compilation cannot take the eager numbers with it.
step bench_eager 200 env SKIP_BUILD=1 SKIP_TESTS=1 BUILD_DIR="$build" TORCH_MODES=eager bench/run.sh
written=$(sed -n 's/^wrote \(bench\/results\/.*\.json\)$/\1/p' "$out/bench_eager.log" | tail -1)
[[ -n $written && -f $written ]] && cp "$written" "$out/bench.json"
step torch_compile 240 "$python" bench/torch_reference.py --preset 7b --sequences 16 --seq-len 512 --warmup 1 \
  --repeat 3 --modes compile --compile-mode "${TORCH_COMPILE_MODE:-default}" --json "$out/torch_compile.json"

log "results: $out/results.json"
summarize
status=$?
log "done in $(($(date +%s) - t0)) s: $([[ $status == 0 ]] && echo 'every check passed' || echo 'some check FAILED')"
exit $status
