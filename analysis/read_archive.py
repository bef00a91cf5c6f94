#!/usr/bin/env python3
"""Read a divprune run archive (src/archive/SCHEMA.md) with plain h5py + numpy.

    /usr/bin/python3 analysis/read_archive.py RUN.h5            # summary table of every plan
    /usr/bin/python3 analysis/read_archive.py RUN.h5 --json     # the same (and more) as JSON
    /usr/bin/python3 analysis/read_archive.py RUN.h5 --check    # exit 1 if a dataset lacks units/description
                                                                # or a stored summary disagrees with its arrays

As a library:

    from read_archive import load_archive, summary_table
    run = load_archive("RUN.h5")
    table = summary_table(run)        # dict of equal-length columns: pandas.DataFrame(table) works
    run["plans"][0]["tokens"]["kl"]   # numpy arrays, one dict per plan
    base_logprobs(run)                # (K, V) float64 base log-probs, renormalised as the C++ reader does

It never imports the C++ code, and needs pandas only if you want a DataFrame.
"""
import argparse
import json
import math
import sys

import h5py
import numpy as np

PERCENTILE_LEVELS = [100, 99.9, 99, 95, 90, 50, 10, 5, 1, 0.1, 0]


def _value(x):
    """HDF5 attribute/scalar -> plain Python value."""
    if isinstance(x, bytes):
        return x.decode("utf-8")
    if isinstance(x, np.ndarray):
        if x.dtype.kind in "OS":
            return [_value(v) for v in x.tolist()]
        return x.tolist() if x.ndim else x.item()
    if isinstance(x, np.generic):
        return x.item()
    return x


def _attrs(obj):
    return {k: _value(v) for k, v in obj.attrs.items()}


def _read(ds):
    """Dataset -> numpy array (strings decoded) or Python scalar."""
    if ds.shape == ():
        return _value(ds[()])
    if h5py.check_string_dtype(ds.dtype) is not None:
        return [s.decode("utf-8") if isinstance(s, bytes) else s for s in ds[...]]
    return ds[...]


def _group_dict(group, skip=()):
    """Every dataset below `group` as nested dicts (skipping the names in `skip`)."""
    out = {}
    for name, obj in group.items():
        if name in skip:
            continue
        out[name] = _group_dict(obj) if isinstance(obj, h5py.Group) else _read(obj)
    return out


def _ragged(flat, offsets):
    return [flat[offsets[i]:offsets[i + 1]] for i in range(len(offsets) - 1)]


def load_archive(path, logprobs=True):
    """Loads the whole archive into dicts of numpy arrays and Python values. logprobs=False leaves out the
    (large) /baseline/logprobs array."""
    with h5py.File(path, "r") as f:
        run = {"path": str(path), "attrs": _attrs(f), "runs": {}, "data": {}, "baseline": None, "plans": [],
               "feature_names": []}
        if "runs" in f:
            run["runs"] = {k: _attrs(g) for k, g in f["runs"].items()}
        if "data" in f:
            d = _group_dict(f["data"])
            d["attrs"] = _attrs(f["data"])
            ppl, pr, mc = d.get("ppl", {}), d.get("prompts", {}), d.get("mc", {})
            if ppl:
                d["chunks"] = _ragged(ppl["tokens"], ppl["chunk_offsets"])
            if pr:
                d["prompt_ids"] = _ragged(pr["ids"], pr["offsets"])
            if mc:
                d["mc_contexts"] = _ragged(mc["context_ids"], mc["context_offsets"])
                d["mc_choices"] = _ragged(mc["choice_ids"], mc["choice_offsets"])
            run["data"] = d
        if "baseline" in f:
            b = _group_dict(f["baseline"], skip=() if logprobs else ("logprobs",))
            b["attrs"] = _attrs(f["baseline"])
            run["baseline"] = b
        if "plans" in f:
            for name, obj in f["plans"].items():
                if name == "feature_names":
                    run["feature_names"] = _read(obj)
                    continue
                p = _group_dict(obj)
                p["attrs"] = _attrs(obj)
                p["id"] = name
                run["plans"].append(p)
        run["plans"].sort(key=lambda p: (p["attrs"].get("order", 0), p["id"]))
    return run


def base_logprobs(run):
    """(K, V) float64 base log-probs of the kept tokens, renormalised per row (log-sum-exp of the stored fp16
    values), which is what the KL uses; the stored logprob_shift cancels. Top-k storage: (ids, log-probs)."""
    b = run["baseline"]
    if b is None:
        return None
    if "topk_ids" in b:
        return b["topk_ids"], np.asarray(b["topk_logprobs"], np.float64)
    x = np.asarray(b["logprobs"], np.float64)
    m = x.max(axis=1, keepdims=True)
    return x - (m + np.log(np.exp(x - m).sum(axis=1, keepdims=True)))


def summary_table(run, complete_only=True):
    """One row per plan: name, id, attributes and every summary scalar, as a dict of columns."""
    rows = []
    for p in run["plans"]:
        if complete_only and p["attrs"].get("complete") != 1:
            continue
        row = {"name": p["attrs"].get("name"), "id": p["id"]}
        for k in ("order", "sparsity", "parameters", "seconds", "replica", "run_index", "complete"):
            row[k] = p["attrs"].get(k)
        row.update(p.get("summary", {}))
        rows.append(row)
    columns = []
    for r in rows:
        columns += [k for k in r if k not in columns]
    return {c: [r.get(c) for r in rows] for c in columns}


def check_archive(path):
    """Problems: datasets without units/description attributes."""
    problems = []

    def visit(name, obj):
        if isinstance(obj, h5py.Dataset):
            for a in ("units", "description"):
                if a not in obj.attrs:
                    problems.append(f"{name}: no '{a}' attribute")

    with h5py.File(path, "r") as f:
        f.visititems(visit)
        for a in ("schema_version", "software_version", "config_yaml", "model_config", "model_checksum", "world_size", "tp"):
            if a not in f.attrs:
                problems.append(f"/: no '{a}' attribute")
    return problems


def recompute(run):
    """Recomputes summary values from the stored arrays; returns (plan, key, stored, recomputed) tuples."""
    out = []
    base = run["baseline"]
    for p in run["plans"]:
        if p["attrs"].get("complete") != 1:
            continue
        s = p["summary"]
        checks = {}
        if "tokens" in p:
            t = p["tokens"]
            checks["perplexity"] = math.exp(float(np.mean(t["nll"]))) if len(t["nll"]) else None
            checks["same_top1_rate"] = float(np.mean(t["same_top1"])) if len(t["same_top1"]) else None
            checks["dp_rms"] = float(np.sqrt(np.mean(np.asarray(t["dp"], np.float64) ** 2))) if len(t["dp"]) else None
            kl = np.asarray(t["kl"], np.float64)
            if len(kl):
                checks["kl_mean"] = float(kl.mean())
                checks["kl_stderr"] = float(kl.std(ddof=1) / math.sqrt(len(kl))) if len(kl) > 1 else 0.0
                for level in PERCENTILE_LEVELS:
                    key = "kl_p" + str(level).replace(".", "_")
                    checks[key] = float(np.percentile(kl, level))
            if base is not None:
                same = (np.asarray(t["argmax"]) == np.asarray(base["argmax"])).mean() if len(t["argmax"]) else None
                checks["same_top1_rate(from argmax)"] = (float(same) if same is not None else None, "same_top1_rate")
        if "prompts" in p and len(p["prompts"]["fdt"]):
            checks["fdt_mean"] = float(np.mean(p["prompts"]["fdt"]))
            checks["sdt_mean"] = float(np.mean(p["prompts"]["sdt"]))
            if base is not None:
                cont, tf = np.asarray(base["continuation"]), np.asarray(p["prompts"]["tf_argmax"])
                diff = cont != tf
                n = cont.shape[1]
                fdt = np.where(diff.any(axis=1), diff.argmax(axis=1), n)
                checks["fdt_mean(from tf_argmax)"] = (float(fdt.mean()), "fdt_mean")
        if "mc" in p and base is not None and len(p["mc"]["pred_sum"]):
            answer = np.asarray(run["data"]["mc"]["answer"])
            b_ok = np.asarray(base["mc"]["pred_sum"]) == answer
            c_ok = np.asarray(p["mc"]["pred_sum"]) == answer
            checks["mc_flips_sum_total"] = float((b_ok != c_ok).sum())
            checks["mc_accuracy_sum"] = float(c_ok.mean())
        for key, value in checks.items():
            target = key
            if isinstance(value, tuple):
                value, target = value
            if value is None or target not in s:
                continue
            out.append((p["attrs"].get("name"), key, s[target], value))
    return out


def _clean(x):
    """JSON-safe: NaN/inf -> None, numpy -> lists."""
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if isinstance(x, dict):
        return {k: _clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_clean(v) for v in x]
    if isinstance(x, np.ndarray):
        return _clean(x.tolist())
    if isinstance(x, np.generic):
        return _clean(x.item())
    return x


def _print_table(run, table):
    a = run["attrs"]
    print(f"archive {run['path']}: schema {a.get('schema_version')}, divprune {a.get('software_version')}, "
          f"world {a.get('world_size')} = {a.get('replicas')} replica(s) x tp {a.get('tp')}, runs {a.get('runs')}")
    b = run["baseline"]
    if b is not None:
        s = b.get("summary", {})
        print(f"baseline: complete={b['attrs'].get('complete')} perplexity {s.get('perplexity', float('nan')):.4f} "
              f"over {s.get('tokens', 0):.0f} tokens, log-probs {b['attrs'].get('logprob_mode')} for "
              f"{b['attrs'].get('kept_tokens')} tokens, MC accuracy {s.get('mc_accuracy_sum', float('nan')):.3f}")
    cols = [("name", "{:<24}", "plan"), ("perplexity", "{:>10.4f}", "ppl"), ("kl_mean", "{:>10.3e}", "KL mean"),
            ("kl_stderr", "{:>9.2e}", "KL se"), ("kl_p99", "{:>9.2e}", "KL p99"), ("same_top1_rate", "{:>9.4f}", "top1"),
            ("dp_rms", "{:>8.4f}", "dp rms"), ("fdt_mean", "{:>7.2f}", "FDT"), ("sdt_mean", "{:>7.4f}", "SDT"),
            ("mc_accuracy_sum", "{:>7.3f}", "MC acc"), ("mc_flips_sum_total", "{:>6.0f}", "flips"),
            ("sparsity", "{:>8.4f}", "sparsity")]
    print(" ".join(fmt.replace(".4f", "").replace(".3e", "").replace(".2e", "").replace(".2f", "").replace(".0f", "")
                   .replace(".3f", "").format(title) for _, fmt, title in cols))
    n = len(table.get("name", []))
    for i in range(n):
        cells = []
        for key, fmt, _ in cols:
            v = table.get(key, [None] * n)[i]
            if v is None or (isinstance(v, float) and math.isnan(v)):
                width = int("".join(ch for ch in fmt.split(":")[1].split(".")[0] if ch.isdigit()) or 8)
                cells.append("-".rjust(width))
            else:
                cells.append(fmt.format(v[:24] if isinstance(v, str) else v))
        print(" ".join(cells))
    incomplete = [p["attrs"].get("name") for p in run["plans"] if p["attrs"].get("complete") != 1]
    if incomplete:
        print(f"incomplete plans (interrupted run; a rerun redoes them): {', '.join(map(str, incomplete))}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("archive")
    parser.add_argument("--json", action="store_true", help="print a JSON document instead of the table")
    parser.add_argument("--no-logprobs", action="store_true", help="do not load /baseline/logprobs (large)")
    parser.add_argument("--check", action="store_true",
                        help="exit 1 if a dataset lacks units/description or a summary disagrees with its arrays")
    args = parser.parse_args(argv)

    run = load_archive(args.archive, logprobs=not args.no_logprobs)
    table = summary_table(run)
    problems = check_archive(args.archive)
    deviations = []
    for plan, key, stored, value in recompute(run):
        tol = 1e-6 * max(1.0, abs(value)) if "perplexity" not in key else 1e-6 * abs(value)
        if key.startswith(("kl_", "dp_")):
            tol = 1e-9 + 1e-6 * abs(value)
        if stored is None or not (abs(stored - value) <= tol):
            deviations.append(f"plan {plan}: {key} stored {stored} recomputed {value}")
    datasets = []
    with h5py.File(args.archive, "r") as f:
        f.visititems(lambda name, obj: datasets.append(name) if isinstance(obj, h5py.Dataset) else None)

    if args.json:
        doc = {
            "root": run["attrs"],
            "datasets": len(datasets),
            "baseline": None if run["baseline"] is None else {
                "attrs": run["baseline"]["attrs"], "summary": run["baseline"].get("summary", {})},
            "plans": [{"id": p["id"], "name": p["attrs"].get("name"), "complete": p["attrs"].get("complete"),
                       "run_index": p["attrs"].get("run_index"), "summary": p.get("summary", {}),
                       "fdt": p.get("prompts", {}).get("fdt"), "kl": p.get("tokens", {}).get("kl")}
                      for p in run["plans"]],
            "table": table,
            "problems": problems,
            "deviations": deviations,
        }
        print(json.dumps(_clean(doc)))
    else:
        _print_table(run, table)
        print(f"{len(datasets)} datasets read")
        for line in problems + deviations:
            print("problem:", line)
    if args.check and (problems or deviations):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
