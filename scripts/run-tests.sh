#!/usr/bin/env bash
# One command from a fresh Debian 12 machine (as root, from the repository root) to a full CPU test run:
#   bash scripts/run-tests.sh
#  1. installs the dependencies (scripts/install-deps.sh);
#  2. builds Release in build/ and runs what is too slow for the sanitizers: ctest -L "slow|analysis|layering"
#     (the whole-corpus WikiText-2 references from one shared run, the fixture test wikitext_run; the demo; the
#     Python analysis scripts; the include-layering check); the CUDA backend, GPU tests and benchmarks are
#     compiled there too, never run;
#  3. builds every other test, the MPI ones included, with AddressSanitizer + UBSan in build-asan/ and runs them
#     there: ctest -LE "gpu|slow|analysis|layering|slurm";
#  4. runs the Slurm test with the Release binary: ctest -L slurm (tests/slurm: a live single-machine cluster).
#  Every test runs once.
# Each phase's duration is printed at the end.
# Exits non-zero if any step fails; both test phases run even if the first one fails.
# Environment: DIVPRUNE_CUDA=OFF skips the CUDA backend in build/ (built by default when the toolkit is found;
# GPU tests are built, never run here). JOBS sets the build parallelism (default: all cores).
# DIVPRUNE_ASSETS points the tests at ../shared/assets elsewhere; with CI=true a missing asset fails.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_rmaps_base_oversubscribe=1
JOBS="${JOBS:-$(nproc)}"
CUDA="${DIVPRUNE_CUDA:-ON}"
status=0
phase_start=$SECONDS
phase_name=""
phase_at=$SECONDS
durations=()
phase() {
  [[ -n "$phase_name" ]] && durations+=("$(printf '%5d s  %s' $((SECONDS - phase_at)) "$phase_name")")
  phase_name="$1"
  phase_at=$SECONDS
  echo; echo "=== run-tests: $1 (at +$((SECONDS - phase_start)) s) ==="
}

phase "dependencies"
bash scripts/install-deps.sh

# The executables the tests selected by ctest ARGS in BUILD_DIR run: test_<name> for every C++ test (the
# Python and CMake-script tests need only the divprune binary, always built).
test_targets() {
  local dir=$1; shift
  local available name
  available=$(cmake --build "$dir" --target help)
  while read -r name; do
    if grep -qx "\.\.\. test_$name" <<<"$available"; then echo "test_$name"; fi
  done < <(ctest --test-dir "$dir" -N "$@" | sed -n 's/^ *Test *#[0-9]*: *//p')
}

# Every test runs once. The fast unit and MPI tests run in the sanitizer build (below); the Release build runs
# what is too slow for the sanitizers (whole-corpus references, the demo, the analysis scripts) and compiles the
# CUDA backend, the GPU tests (never run here) and the benchmarks, so that they cannot rot unseen.
RELEASE_LABELS="slow|analysis|layering"
phase "Release build (build/, DIVPRUNE_CUDA=$CUDA)"
# Unity builds (CMAKE_UNITY_BUILD: each target's sources compiled in batches of 8 as one translation unit) parse the
# heavy headers (fmt, spdlog, CLI11, yaml-cpp, HDF5, GoogleTest) once per batch instead of once per file: the
# Release build takes about 350 instead of 610 CPU-seconds of compilation. Both builds use them; a name that two
# files of one target define in anonymous namespaces then fails to compile, so such helpers live in one header.
UNITY=(-DCMAKE_UNITY_BUILD=ON -DCMAKE_UNITY_BUILD_BATCH_SIZE=8)
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DDIVPRUNE_CUDA="$CUDA" "${UNITY[@]}"
mapfile -t release_targets < <(test_targets build -L "$RELEASE_LABELS" -LE gpu; test_targets build -L gpu)
available=$(cmake --build build --target help)
for bench in bench_forward bench_apply_plan; do
  if grep -qx "\.\.\. $bench" <<<"$available"; then release_targets+=("$bench"); fi
done
echo "run-tests: building divprune ${release_targets[*]}"
cmake --build build -j "$JOBS" --target divprune "${release_targets[@]}"

phase "Release tests: ctest -L \"$RELEASE_LABELS\" -LE gpu"
ctest --test-dir build --output-on-failure -L "$RELEASE_LABELS" -LE gpu -j2 || status=1

# The sanitizer build is CPU-only (the CUDA runtime and ASan's shadow memory do not mix) and builds only what
# the selected tests need: their test_<name> executables and the divprune binary the CLI tests run. Debug keeps
# asserts on; -O1 -g1 (line tables) compiles in about half the time of -O2 -g and still gives file:line traces.
phase "AddressSanitizer build (build-asan/)"
# The MPI tests run here too (every rank is a sanitized process under mpirun); the slow ones stay out.
ASAN_LABELS="gpu|slow|analysis|layering|slurm"
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DCMAKE_CXX_FLAGS_DEBUG="-O1 -g1" -DDIVPRUNE_SANITIZE=ON \
  -DDIVPRUNE_CUDA=OFF "${UNITY[@]}"
mapfile -t asan_targets < <(test_targets build-asan -LE "$ASAN_LABELS")
echo "run-tests: building divprune ${asan_targets[*]}"
cmake --build build-asan -j "$JOBS" --target divprune "${asan_targets[@]}"

phase "AddressSanitizer tests: ctest -LE \"$ASAN_LABELS\" (the mpi label without leak checks)"
# Open MPI (initialised by every divprune run) keeps allocations alive until exit by design: leaks inside it
# are suppressed. Its plugins stay loaded and malloc stacks are fully unwound so those leaks can be attributed.
export OMPI_MCA_mca_base_component_disable_dlclose=1
export LSAN_OPTIONS="suppressions=$PWD/scripts/lsan.supp:print_suppressions=0"
export ASAN_OPTIONS="fast_unwind_on_malloc=0:detect_stack_use_after_return=1:strict_string_checks=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
ctest --test-dir build-asan --output-on-failure -LE "$ASAN_LABELS|mpi" -j2 || status=1
# The MPI tests with ASan + UBSan but without LeakSanitizer: at exit of a multi-rank model test (compress_tp) LSan's
# tracer thread crashes ("Tracer caught signal 11", LeakSanitizer fatal error) before it reports anything, so leak
# checking of MPI runs is not possible yet; memory errors and undefined behaviour are still caught on every rank.
ASAN_OPTIONS="$ASAN_OPTIONS:detect_leaks=0" \
  ctest --test-dir build-asan --output-on-failure -L mpi -LE "$ASAN_LABELS" -j2 || status=1

# Its own phase: it starts munged, slurmctld and slurmd on localhost (stopped by pid when it ends) and submits
# the real slurm/ scripts; its duration is reported apart from the unit tests'.
phase "Slurm test: ctest -L slurm (build/)"
ctest --test-dir build --output-on-failure -L slurm || status=1

phase "done"
printf 'run-tests: %s\n' "${durations[@]}"
if [[ $status -ne 0 ]]; then
  echo "run-tests: FAILED (see the output above)"
else
  echo "run-tests: all tests passed in $((SECONDS - phase_start)) s"
fi
exit "$status"
