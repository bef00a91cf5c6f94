#!/usr/bin/env python3
"""CTest `compare_archives`: analysis/compare_archives.py (the CUDA-vs-CPU check of bench/gpu-check.sh) on real
archives the built binary writes.

    /usr/bin/python3 tests/analysis/test_compare_archives.py BUILD/src/divprune SOURCE_DIR

1. `divprune run configs/tiny-eval.yaml` made tiny with --set (128 tokens, 4 prompts, 8 items, plans base and
   int8_all), once on 1 rank and once under `mpirun -np 2` (2 replicas: a different split of the work, the
   same numbers): compare_archives.py passes, every metric row PASS, and --json agrees.
2. Copies edited with h5py must fail with exit 1, naming the failing row: int8_all's perplexity 1% off
   (tolerance 0.5%), base's kl_mean 1e-5 nats off (above the 2e-6 absolute bound), one plan deleted.
3. A perplexity 0.4% off still passes (the tolerance is applied, not equality), and a non-HDF5 file exits 2.

Exit status 0: passed, 1: failed (the first failed expectation is printed), 77: skipped (assets or h5py missing
and CI is not "true").
"""
import json
import os
import shutil
import sys
import tempfile

from script_test_support import SKIP, Failure, assets_dir, expect, run, skip_or_fail, tail

PYTHON = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable


def make_archive(binary, source, assets, archive, ranks):
    overrides = {
        "assets": os.path.abspath(assets),
        "archive": archive,
        "data.perplexity.max_chunks": "1",
        "data.perplexity.ctx": "128",
        "data.logprobs.max_tokens": "128",
        "data.prompts.count": "4",
        "data.multiple_choice.build.items": "8",
        "evaluate.plans": "[base, plans/int8_all.yaml]",
    }
    cmd = [binary, "run", os.path.join(source, "configs", "tiny-eval.yaml"), "--threads", "1", "-q"]
    for key, value in overrides.items():
        cmd += ["--set", f"{key}={value}"]
    if ranks > 1:
        cmd = ["mpirun", "--oversubscribe", "--allow-run-as-root", "-np", str(ranks)] + cmd
    code, out, err = run(cmd)
    expect(code == 0, f"{' '.join(cmd)} exited {code}:\n{tail(out)}\n{tail(err)}")


def compare(source, a, b, *extra):
    return run([PYTHON, os.path.join(source, "analysis", "compare_archives.py"), a, b, *extra])


def plan_ids(archive):
    import h5py
    with h5py.File(archive, "r") as f:
        return {f["plans"][k].attrs["name"] if isinstance(f["plans"][k].attrs["name"], str)
                else f["plans"][k].attrs["name"].decode(): k
                for k in f["plans"] if isinstance(f["plans"][k], h5py.Group)}


def edited_copy(archive, copy, edit):
    import h5py
    shutil.copy(archive, copy)
    with h5py.File(copy, "r+") as f:
        edit(f)
    return copy


def scale_summary(plan_id, metric, factor=None, add=None):
    def edit(f):
        ds = f[f"plans/{plan_id}/summary/{metric}"]
        value = float(ds[()])
        ds[()] = value * factor if factor is not None else value + add
    return edit


def row_line(out, plan, metric):
    for line in out.splitlines():
        fields = line.split()
        if len(fields) >= 2 and fields[0] == plan and fields[1] == metric:
            return line
    return None


def check(binary, source, assets, workdir):
    one, two = os.path.join(workdir, "one.h5"), os.path.join(workdir, "two.h5")
    make_archive(binary, source, assets, one, 1)
    make_archive(binary, source, assets, two, 2)
    ids = plan_ids(one)
    expect(set(ids) == {"base", "int8_all"}, f"the archive holds plans {sorted(ids)}, expected base and int8_all")

    # 1. 1 rank vs 2 replicas: PASS, every metric row PASS, JSON agrees.
    report = os.path.join(workdir, "report.json")
    code, out, err = compare(source, two, one, "--json", report)
    expect(code == 0, f"compare_archives.py exited {code} on 2 ranks vs 1 rank (expected 0):\n{tail(out)}\n{tail(err)}")
    for plan in ids:
        for metric in ("perplexity", "kl_mean", "same_top1_rate", "fdt_mean", "tokens", "prompts"):
            line = row_line(out, plan, metric)
            expect(line is not None and line.endswith("PASS"), f"no PASS row for {plan} {metric}:\n{tail(out, 4000)}")
    expect("PASS: 2 plans, 12 checks passed, 0 failed" in out, f"unexpected verdict line:\n{tail(out)}")
    with open(report) as f:
        doc = json.load(f)
    expect(doc["verdict"] == "PASS" and doc["plans"] == 2 and doc["failed"] == 0 and len(doc["rows"]) == 12,
           f"--json verdict {doc['verdict']}, plans {doc['plans']}, failed {doc['failed']}, rows {len(doc['rows'])}")
    expect(doc["tolerances"] == {"ppl_rel": 0.005, "kl_rel": 0.05, "kl_abs": 2e-6, "top1": 0.01, "fdt": 1.0},
           f"--json default tolerances {doc['tolerances']}")

    # 2. Tampered copies fail with exit 1 and name the row.
    cases = [
        ("int8_all", "perplexity", scale_summary(ids["int8_all"], "perplexity", factor=1.01)),
        ("base", "kl_mean", scale_summary(ids["base"], "kl_mean", add=1e-5)),
    ]
    for plan, metric, edit in cases:
        copy = edited_copy(two, os.path.join(workdir, f"tampered-{plan}-{metric}.h5"), edit)
        code, out, err = compare(source, copy, one)
        expect(code == 1, f"{plan} {metric} tampered: exit {code} (expected 1):\n{tail(out)}\n{tail(err)}")
        line = row_line(out, plan, metric)
        expect(line is not None and line.endswith("FAIL"), f"{plan} {metric} tampered: row is {line!r}:\n{tail(out, 4000)}")
        expect("FAIL: 2 plans, 11 checks passed, 1 failed" in out, f"{plan} {metric} tampered: verdict:\n{tail(out)}")

    def drop_int8(f):
        del f[f"plans/{ids['int8_all']}"]
    copy = edited_copy(two, os.path.join(workdir, "missing-plan.h5"), drop_int8)
    code, out, err = compare(source, copy, one)
    line = row_line(out, "int8_all", "present")
    expect(code == 1 and line is not None and line.endswith("FAIL"),
           f"a plan missing on one side: exit {code}, row {line!r} (expected 1 and a FAIL row):\n{tail(out)}")

    # 3. Within tolerance still passes; a non-archive is bad input.
    copy = edited_copy(two, os.path.join(workdir, "within.h5"), scale_summary(ids["int8_all"], "perplexity", factor=1.004))
    code, out, err = compare(source, copy, one)
    expect(code == 0, f"perplexity 0.4% off (tolerance 0.5%): exit {code} (expected 0):\n{tail(out)}")
    code, out, err = compare(source, copy, one, "--ppl-rel", "0.003")
    expect(code == 1, f"perplexity 0.4% off with --ppl-rel 0.003: exit {code} (expected 1):\n{tail(out)}")
    text = os.path.join(workdir, "not-an-archive.h5")
    with open(text, "w") as f:
        f.write("not HDF5\n")
    code, out, err = compare(source, text, one)
    expect(code == 2 and "not a readable HDF5 file" in err, f"non-HDF5 input: exit {code}, stderr {err!r}")


def main():
    if len(sys.argv) != 3:
        print(__doc__)
        return 2
    binary, source = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
    assets = assets_dir(source)
    if not os.path.exists(os.path.join(assets, "tiny-llama2-trained", "config.json")):
        return skip_or_fail(f"the assets are not in {assets} (set DIVPRUNE_ASSETS)")
    try:
        import h5py  # noqa: F401
    except ImportError:
        return skip_or_fail("h5py is not installed (Debian: python3-h5py)")
    workdir = tempfile.mkdtemp(prefix="divprune-compare-")
    try:
        check(binary, source, assets, workdir)
    except Failure as e:
        print(f"FAIL: {e}")
        return 1
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print("PASS: compare_archives.py passes 1 rank vs 2 replicas and fails every tampered copy")
    return 0


if __name__ == "__main__":
    sys.exit(main())
