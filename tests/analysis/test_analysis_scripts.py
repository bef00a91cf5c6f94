#!/usr/bin/env python3
"""CTest `analysis_scripts`: analysis/read_archive.py and analysis/plots.py on an archive the built binary writes.

    /usr/bin/python3 tests/analysis/test_analysis_scripts.py BUILD/src/divprune SOURCE_DIR

1. `divprune run configs/demo.yaml` made tiny with --set: baseline, sensitivity (layers 0 and 5, one step,
   layer removal, no int8), 8 random samples + uniform, predictor, 1 search round of 2 plans.
2. read_archive.py --check passes, and its tables name the search and the sensitivity sweep.
3. read_archive.py --json agrees with the archive read directly with h5py (best searched id, ranking length,
   rounds, references).
4. --check fails on a copy whose /sensitivity and /search/rounds tables were tampered with.
5. plots.py writes the four PNGs; it exits non-zero on an archive with nothing to plot and on a non-HDF5 file.

Exit status 0: passed, 1: failed (the first failed expectation is printed), 77: skipped (assets or Python
modules missing and CI is not "true").
"""
import json
import os
import shutil
import sys
import tempfile
import time

from script_test_support import SKIP, Failure, assets_dir, expect, run, skip_or_fail, tail

PLOTS = ["sensitivity_fdt.png", "search_objective_vs_sparsity.png", "predictor_cv.png", "search_rounds.png"]
LAYERS, COMPONENTS = [0, 5], 7


def run_pipeline(binary, source, assets, archive):
    overrides = {
        "assets": os.path.abspath(assets),
        "archive": archive,
        "stages": "[baseline,sensitivity,sample,train,search]",
        "data.perplexity.max_chunks": "1",
        "data.prompts.count": "4",
        "sensitivity.steps": "[0.5]",
        "sensitivity.layers": "[0,5]",
        "sensitivity.int8": "false",
        "sensitivity.remove_layers": "true",
        "sample.count": "8",
        "search.rounds": "1",
        "search.evaluate": "2",
    }
    cmd = [binary, "run", os.path.join(source, "configs", "demo.yaml"), "--threads", "2"]
    for key, value in overrides.items():
        cmd += ["--set", f"{key}={value}"]
    code, out, err = run(cmd)
    expect(code == 0, f"divprune run exited {code}:\n{tail(out)}\n{tail(err)}")
    expect(os.path.getsize(archive) > 0, f"divprune run wrote no archive at {archive}")


def read_archive(source, *args):
    return run(["/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable,
                os.path.join(source, "analysis", "read_archive.py"), *args])


def check_text_and_check(source, archive):
    code, out, err = read_archive(source, archive, "--check", "--no-logprobs")
    expect(code == 0, f"read_archive.py --check exited {code} on a fresh archive:\n{tail(out)}\n{tail(err)}")
    for needle in ("search: objective mean_fdt", "best searched", "predictor (mean_fdt)", "round 0:", "pareto front",
                   "sensitivity:", "layer removed, mean FDT: L0"):
        expect(needle in out, f"read_archive.py output lacks {needle!r}:\n{tail(out, 4000)}")
    expect("problem:" not in out, f"read_archive.py reports problems:\n{tail(out, 4000)}")


def _text(x):
    return x.decode() if isinstance(x, bytes) else str(x)


def archive_facts(archive):
    """What the JSON must agree with, read directly with h5py."""
    import h5py
    with h5py.File(archive, "r") as f:
        sample = [_text(x) for x in f["search/sample/ids"][...]]
        round0 = [_text(x) for x in f["search/rounds/0/ids"][...]]
        uniform = _text(f["search/sample"].attrs["uniform_id"])
        return {"best_id": _text(f["search/best"].attrs["id"]),
                "best_objective": float(f["search/best"].attrs["objective"]),
                "layers": [int(x) for x in f["sensitivity/layers"][...]],
                "components": [_text(x) for x in f["sensitivity/components"][...]],
                "rounds": sorted(f["search/rounds"].keys()),
                "round0_ids": round0,
                "uniform_id": uniform,
                "pairs": len(set(sample + [uniform] + round0))}


def check_json(source, archive):
    code, out, err = read_archive(source, archive, "--json", "--no-logprobs")
    expect(code == 0, f"read_archive.py --json exited {code}:\n{tail(err)}")
    doc = json.loads(out)
    facts = archive_facts(archive)
    best_id = facts["best_id"]
    search, sens = doc.get("search"), doc.get("sensitivity")
    expect(search is not None and sens is not None, f"--json lacks search or sensitivity: keys {sorted(doc)}")
    expect(search["best"]["attrs"]["id"] == best_id,
           f"--json search.best id {search['best']['attrs'].get('id')} != /search/best id {best_id}")
    expect(facts["layers"] == LAYERS and len(facts["components"]) == COMPONENTS,
           f"/sensitivity swept layers {facts['layers']} x {facts['components']}, configured {LAYERS} x {COMPONENTS}")
    expected_rows = len(facts["layers"]) * len(facts["components"])
    expect(len(sens["ranking_table"]) == expected_rows,
           f"--json ranking has {len(sens['ranking_table'])} rows, layers x components = {expected_rows}")
    expect(sorted((r["layer"], r["component"]) for r in sens["ranking_table"]) ==
           sorted((l, c) for l in facts["layers"] for c in facts["components"]),
           "--json ranking does not list every (layer, component) once")
    expect([r["layer"] for r in sens["removed_fdt"]] == LAYERS, f"--json removed_fdt: {sens['removed_fdt']}")
    expect([str(r["index"]) for r in search["rounds"]] == facts["rounds"],
           f"--json rounds {[r['index'] for r in search['rounds']]} != /search/rounds {facts['rounds']}")
    expect([p["id"] for p in search["rounds"][0]["plans"]] == facts["round0_ids"], "--json round 0 ids differ")
    roles = {r["role"]: r for r in search["references"]}
    expect(set(roles) == {"uniform", "best random", "best searched"}, f"--json references: {sorted(roles)}")
    expect(roles["best searched"]["id"] == best_id and roles["best searched"]["measured"] == facts["best_objective"],
           f"--json best searched row {roles['best searched']} disagrees with /search/best")
    expect(roles["best searched"]["predicted_by"] == "round 0", "best searched plan's prediction is not its round's")
    expect(roles["uniform"]["id"] == facts["uniform_id"], "--json uniform reference differs from the archive")
    scores = search["scores"]
    expect(scores["pairs"] == facts["pairs"] and -1.0 <= scores["spearman"] <= 1.0,
           f"--json predictor scores {scores}: expected {facts['pairs']} pairs (samples, uniform, round 0)")
    expect(doc["inconsistencies"] == [] and doc["problems"] == [] and doc["deviations"] == [],
           f"--json findings: {doc['problems'] + doc['deviations'] + doc['inconsistencies']}")


def tamper(archive, copy):
    """A copy with one sensitivity cell and one round measurement that no longer match their plans."""
    import h5py
    shutil.copy(archive, copy)
    with h5py.File(copy, "r+") as f:
        fdt = f["sensitivity/fdt"]
        values = fdt[...]
        values[1, 2, 0] += 3.0
        fdt[...] = values
        measured = f["search/rounds/0/measured"]
        m = measured[...]
        m[0] += 1.0
        measured[...] = m


def check_check_fails(source, archive, workdir):
    copy = os.path.join(workdir, "tampered.h5")
    tamper(archive, copy)
    code, out, err = read_archive(source, copy, "--check", "--no-logprobs")
    expect(code == 1, f"read_archive.py --check exited {code} on a tampered archive (expected 1):\n{tail(out)}")
    for needle in ("/sensitivity/fdt[1, 2, 0]", "/sensitivity/ranking", "/search/rounds/0/measured"):
        expect(needle in out, f"--check on the tampered archive does not report {needle!r}:\n{tail(out, 4000)}")


def plots(source, *args):
    return run(["/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable,
                os.path.join(source, "analysis", "plots.py"), *args])


def check_plots(source, archive, workdir):
    out_dir = os.path.join(workdir, "plots")
    code, out, err = plots(source, archive, "--out", out_dir)
    expect(code == 0, f"plots.py exited {code}:\n{tail(out)}\n{tail(err)}")
    for name in PLOTS:
        path = os.path.join(out_dir, name)
        expect(os.path.isfile(path) and os.path.getsize(path) > 1000, f"plots.py did not write {path} (or it is empty)")
        with open(path, "rb") as f:
            expect(f.read(8) == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG file")
        expect(path in out, f"plots.py does not list {path} among the files written:\n{out}")


def check_plots_refuse(source, workdir):
    import h5py
    empty = os.path.join(workdir, "empty.h5")
    with h5py.File(empty, "w") as f:
        f.attrs["schema_version"] = 1
    code, out, err = plots(source, empty, "--out", os.path.join(workdir, "none"))
    expect(code == 1 and "nothing to plot" in err and empty in err,
           f"plots.py on an archive without /search or /sensitivity exited {code}: {out}{err}")
    garbage = os.path.join(workdir, "garbage.h5")
    with open(garbage, "w") as f:
        f.write("not HDF5\n")
    code, out, err = plots(source, garbage, "--out", os.path.join(workdir, "none"))
    expect(code == 2 and "cannot read" in err and garbage in err,
           f"plots.py on a non-HDF5 file exited {code}: {out}{err}")


def main(argv):
    if len(argv) != 3:
        print(__doc__)
        return 2
    binary, source = argv[1], argv[2]
    assets = assets_dir(source)
    if not os.path.exists(os.path.join(assets, "tiny-llama2-trained", "config.json")):
        return skip_or_fail(f"the test assets are missing under {assets} (set DIVPRUNE_ASSETS)")
    try:
        import h5py  # noqa: F401
        import matplotlib  # noqa: F401
        import numpy  # noqa: F401
    except ImportError as e:
        return skip_or_fail(f"{sys.executable} lacks a module the analysis scripts need: {e}")
    workdir = tempfile.mkdtemp(prefix="divprune-analysis-")
    archive = os.path.join(workdir, "a.h5")
    start = time.monotonic()
    try:
        run_pipeline(binary, source, assets, archive)
        print(f"divprune run: {time.monotonic() - start:.1f} s")
        check_text_and_check(source, archive)
        check_json(source, archive)
        check_check_fails(source, archive, workdir)
        check_plots(source, archive, workdir)
        check_plots_refuse(source, workdir)
    except Failure as e:
        print(f"FAIL: {e}\n(work directory kept: {workdir})")
        return 1
    shutil.rmtree(workdir, ignore_errors=True)
    print(f"PASS in {time.monotonic() - start:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
