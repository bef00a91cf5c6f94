#!/usr/bin/env bash
# The slurm/ scripts on a live single-machine Slurm cluster (Debian's slurm-wlm and munge; tests/slurm/cluster.sh):
#  1. shape checks without a cluster: tasks not a multiple of tp fails fast (exit 2, clear message); a
#     config with an unknown stage is refused by slurm/submit.sh (divprune run --check-config) before sbatch;
#  2. the reference: the same small evaluate run (16 plans of tiny-llama2-trained) without Slurm;
#  3. slurm/submit.sh + slurm/preemptible.sbatch on 2 CPU tasks (2 replicas, srun --mpi=pmix, backend cpu
#     derived), interrupted twice: `scancel --signal=TERM` once plans are archived (divprune stops after the
#     plans in flight, exits 75, the script requeues), then a hard `scontrol requeue` once the second start
#     archived a plan; the third start finishes;
#  4. the archive holds exactly the reference's plans with the same summaries, every plan complete, three runs,
#     each start archived something, and no plan was archived twice (the jobs' progress log).
# Usage: test_slurm_requeue.sh DIVPRUNE_BINARY SOURCE_DIR. Exit 77 (skipped) without root, slurm-wlm, munge or
# the assets, unless CI=true. Everything runs on localhost; the daemons are stopped by pid whatever happens.
set -euo pipefail
BIN="$(realpath "$1")"
SRC="$(realpath "$2")"
ASSETS="${DIVPRUNE_ASSETS:-${DIVPRUNE_ASSETS_DEFAULT:-$SRC/../shared/assets}}"
LIMIT=300  # seconds for the whole test; each wait below checks it

skip() {
  if [[ "${CI:-}" == true ]]; then echo "slurm-test: FAIL (CI=true): $*" >&2; exit 1; fi
  echo "slurm-test: skipped: $*" >&2
  exit 77
}
fail() {
  echo "slurm-test: FAIL: $*" >&2
  exit 1
}
[[ $(id -u) -eq 0 ]] || skip "needs root (the test cluster runs with SlurmUser=root)"
for tool in munged slurmctld slurmd sbatch scontrol squeue sinfo; do
  command -v "$tool" >/dev/null || skip "$tool not installed (apt-get install slurm-wlm munge)"
done
[[ -d "$ASSETS/tiny-llama2-trained" ]] || skip "assets not found at $ASSETS"
/usr/bin/python3 -c 'import h5py' || skip "python3-h5py not installed"

TMP="$(mktemp -d /tmp/divprune-slurm-test.XXXXXX)"
source "$SRC/tests/slurm/cluster.sh"
finish() {
  local rc=$?
  cluster_stop
  if [[ $rc -ne 0 ]]; then
    echo "slurm-test: logs kept in $TMP" >&2
    for f in "$TMP"/job/*.err "$TMP"/cluster/log/slurmctld.log; do
      [[ -f "$f" ]] && { echo "--- $f (last 40 lines)" >&2; tail -n 40 "$f" >&2; }
    done
  else
    rm -rf "$TMP"
  fi
}
trap finish EXIT
start=$SECONDS
left() { echo $((LIMIT - (SECONDS - start))); }

# ---- the config: 16 plans, a small evaluation set -------------------------------------------------------
{
  cat <<EOF
assets: $ASSETS
model: \${assets}/tiny-llama2-trained
tokenizer: \${assets}/llama2-tokenizer.model
archive: $TMP/job/slurm.h5
stages: [baseline, evaluate]
data:
  perplexity:
    text: \${assets}/wikitext2.test.txt
    ctx: 128
    max_chunks: 2
  logprobs: {store: topk, top_k: 16, max_tokens: 256}
  prompts:
    text: \${assets}/wikitext2.valid.txt
    count: 6
    tokens: 16
    continuation: 16
evaluate:
  store_per_token: false
  plans:
    - base
EOF
  for s in 05 10 15 20 25 30 35 40 45 50 55 60 65 70 75; do
    echo "    - {name: magnitude$s, plan: {components: [{layers: all, names: [q, k, v, o, gate, up, down], prune: {method: magnitude, sparsity: 0.$s}}]}}"
  done
} >"$TMP/config.yaml"
mkdir -p "$TMP/job"

# ---- 1. fail-fast checks (no cluster needed) ---------------------------------------------------------------
out="$(cd "$TMP" && SLURM_NTASKS=3 DIVPRUNE_TP=2 DIVPRUNE_HOME="$SRC" DIVPRUNE_BIN="$BIN" DIVPRUNE_CONFIG="$TMP/config.yaml" \
  bash "$SRC/slurm/single-node.sbatch" 2>&1)" && fail "3 tasks at tp 2 were accepted"
grep -q "not a multiple of tp 2" <<<"$out" || fail "no clear message for 3 tasks at tp 2: $out"
sed 's/stages: \[baseline, evaluate\]/stages: [baseline, evaluat]/' "$TMP/config.yaml" >"$TMP/typo.yaml"
out="$(DIVPRUNE_BIN="$BIN" DIVPRUNE_CONFIG="$TMP/typo.yaml" "$SRC/slurm/submit.sh" "$SRC/slurm/single-node.sbatch" 2>&1)" &&
  fail "submit.sh submitted a config with an unknown stage"
grep -q 'unknown stage "evaluat"' <<<"$out" || fail "submit.sh did not show the config error: $out"
echo "slurm-test: fail-fast checks passed" >&2

# ---- 2. the uninterrupted reference ------------------------------------------------------------------------
"$BIN" run "$TMP/config.yaml" --set archive="$TMP/reference.h5" --threads 1 -q >"$TMP/reference.out"
echo "slurm-test: reference run in $((SECONDS - start)) s" >&2

# ---- 3. the job, interrupted twice -------------------------------------------------------------------------
cluster_start "$TMP/cluster"
cd "$TMP/job"
jid="$(DIVPRUNE_BIN="$BIN" DIVPRUNE_CONFIG="$TMP/config.yaml" "$SRC/slurm/submit.sh" --parsable --ntasks=2 \
  --cpus-per-task=1 "$SRC/slurm/preemptible.sbatch")"
echo "slurm-test: submitted job $jid" >&2
err="$TMP/job/divprune-$jid.err"
archived() { grep -c 'archived plan' "$err" 2>/dev/null || true; }
job_field() { scontrol show job "$jid" -o | tr ' ' '\n' | sed -n "s/^$1=//p"; }
# wait_for DESCRIPTION COMMAND...: polls COMMAND every 0.2 s until it succeeds or the time is up.
wait_for() {
  local what="$1"
  shift
  local state
  until "$@"; do
    state="$(job_field JobState)"
    (( $(left) > 0 )) || fail "timed out waiting for $what (job state $state)"
    case "$state" in
      COMPLETED) fail "the job completed before $what: the run is too short to be interrupted" ;;
      FAILED | CANCELLED | TIMEOUT | NODE_FAIL | OUT_OF_MEMORY | BOOT_FAIL | DEADLINE) fail "job ended $state before $what" ;;
    esac
    sleep 0.2
  done
}
at_least() { (( $(archived) >= $1 )); }

wait_for "the first archived plans" at_least 2
scancel --signal=TERM "$jid"
echo "slurm-test: scancel --signal=TERM after $(archived) archived plans" >&2
wait_for "the requeue by the script" grep -q "requeueing job $jid" "$err"
grep -q "interrupted by signal 15" "$err" || fail "divprune did not report a clean stop on SIGTERM"
first=$(archived)
wait_for "the second start's first plan" at_least $((first + 1))
[[ "$(job_field Restarts)" == 1 ]] || fail "expected restart 1, Slurm says $(job_field Restarts)"
scontrol requeue "$jid"
echo "slurm-test: scontrol requeue after $(archived) archived plans" >&2
done_ok() { [[ "$(job_field JobState)" == COMPLETED ]]; }
until done_ok; do
  (( $(left) > 0 )) || fail "timed out waiting for the job to complete (state $(job_field JobState))"
  state="$(job_field JobState)"
  [[ "$state" == FAILED || "$state" == CANCELLED || "$state" == TIMEOUT ]] && fail "job ended $state"
  sleep 0.5
done
[[ "$(job_field Restarts)" == 2 ]] || fail "expected 2 restarts, Slurm says $(job_field Restarts)"
echo "slurm-test: job completed after 2 restarts at $((SECONDS - start)) s" >&2

# ---- 4. the archive against the reference ------------------------------------------------------------------
/usr/bin/python3 - "$TMP/reference.h5" "$TMP/job/slurm.h5" "$err" <<'PY'
import collections, math, re, sys
import h5py

ref_path, job_path, log_path = sys.argv[1:4]

def plans(path):
    with h5py.File(path, "r") as f:
        out = {}
        for pid, g in f["plans"].items():
            if not isinstance(g, h5py.Group):  # /plans/feature_names
                continue
            out[pid] = (bool(g.attrs["complete"]), int(g.attrs["run_index"]),
                        {k: float(v[()]) for k, v in g["summary"].items()})
        return out, len(f["runs"])

ref, _ = plans(ref_path)
job, runs = plans(job_path)
errors = []
if set(ref) != set(job):
    errors.append(f"plan ids differ: only in reference {sorted(set(ref) - set(job))}, only in job {sorted(set(job) - set(ref))}")
for pid in sorted(set(ref) & set(job)):
    if not job[pid][0]:
        errors.append(f"plan {pid} incomplete")
    if job[pid][2].keys() != ref[pid][2].keys():
        errors.append(f"plan {pid}: summary names differ")
        continue
    for name, value in ref[pid][2].items():
        other = job[pid][2][name]
        same = value == other or (math.isnan(value) and math.isnan(other))  # NaN: no multiple-choice items
        if not (same or abs(value - other) <= 1e-9 * max(1.0, abs(value))):
            errors.append(f"plan {pid} summary {name}: reference {value!r}, job {other!r}")
if runs != 3:
    errors.append(f"{runs} runs recorded, expected 3 (one per start)")
per_run = collections.Counter(p[1] for p in job.values())
for r in (1, 2):
    if per_run[r] == 0:
        errors.append(f"start {r} archived no plan (per run: {dict(per_run)})")
archived = collections.Counter(re.findall(r"archived plan \S+ \[([0-9a-f]+)\]", open(log_path).read()))
twice = {pid: n for pid, n in archived.items() if n > 1}
if twice:
    errors.append(f"plans archived more than once: {twice}")
if set(archived) != set(job):
    errors.append(f"the log's archived plans {sorted(archived)} are not the archive's {sorted(job)}")
if errors:
    print("slurm-test: FAIL:\n  " + "\n  ".join(errors), file=sys.stderr)
    sys.exit(1)
print(f"slurm-test: archive matches the reference: {len(job)} plans, summaries equal, plans per run {dict(sorted(per_run.items()))}, "
      f"each archived once", file=sys.stderr)
PY
echo "slurm-test: PASS in $((SECONDS - start)) s" >&2
