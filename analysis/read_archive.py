#!/usr/bin/env python3
"""Read a divprune run archive (src/archive/SCHEMA.md) with plain h5py + numpy.

    /usr/bin/python3 analysis/read_archive.py RUN.h5            # per-plan table, then /search and /sensitivity
    /usr/bin/python3 analysis/read_archive.py RUN.h5 --json     # the same (and more) as JSON
    /usr/bin/python3 analysis/read_archive.py RUN.h5 --check    # exit 1 if a dataset lacks units/description,
                                                                # a stored summary disagrees with its arrays, or
                                                                # /search or /sensitivity disagrees with /plans

As a library:

    from read_archive import load_archive, summary_table
    run = load_archive("RUN.h5")
    table = summary_table(run)        # dict of equal-length columns: pandas.DataFrame(table) works
    run["plans"][0]["tokens"]["kl"]   # numpy arrays, one dict per plan
    base_logprobs(run)                # (K, V) float64 base log-probs, renormalised as the C++ reader does
    run["search"]["rounds"][0]["measured"], run["sensitivity"]["fdt"]   # None when the group is absent
    search_references(run), round_table(run), pareto_table(run), sensitivity_ranking(run)

It never imports the C++ code, and needs pandas only if you want a DataFrame.
"""
import argparse
import json
import math
import sys

import h5py
import numpy as np

PERCENTILE_LEVELS = [100, 99.9, 99, 95, 90, 50, 10, 5, 1, 0.1, 0]
OBJECTIVE_KEYS = {"mean_fdt": "fdt_mean", "mean_kl": "kl_mean", "perplexity": "perplexity"}  # train.objective
SENSITIVITY_METRICS = {"fdt": "fdt_mean", "sdt": "sdt_mean", "kl": "kl_mean", "perplexity": "perplexity"}
NAN = float("nan")


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


def _group_tree(group):
    """Every dataset and subgroup below `group` as nested dicts; each group's attributes under "attrs"."""
    out = {"attrs": _attrs(group)}
    for name, obj in group.items():
        out[name] = _group_tree(obj) if isinstance(obj, h5py.Group) else _read(obj)
    return out


def _ragged(flat, offsets):
    return [flat[offsets[i]:offsets[i + 1]] for i in range(len(offsets) - 1)]


def _load_data(group):
    d = _group_dict(group)
    d["attrs"] = _attrs(group)
    ppl, pr, mc = d.get("ppl", {}), d.get("prompts", {}), d.get("mc", {})
    if ppl:
        d["chunks"] = _ragged(ppl["tokens"], ppl["chunk_offsets"])
    if pr:
        d["prompt_ids"] = _ragged(pr["ids"], pr["offsets"])
    if mc:
        d["mc_contexts"] = _ragged(mc["context_ids"], mc["context_offsets"])
        d["mc_choices"] = _ragged(mc["choice_ids"], mc["choice_offsets"])
    return d


def _load_plans(group, run):
    for name, obj in group.items():
        if name == "feature_names":
            run["feature_names"] = _read(obj)
            continue
        p = _group_dict(obj)
        p["attrs"] = _attrs(obj)
        p["id"] = name
        run["plans"].append(p)
    run["plans"].sort(key=lambda p: (p["attrs"].get("order", 0), p["id"]))


def _load_search(group):
    """/search as nested dicts; rounds become a list ordered by round number, each with its "index"."""
    s = _group_tree(group)
    rounds = s.pop("rounds", {})
    s["rounds"] = [dict(r, index=int(k)) for k, r in sorted(((k, r) for k, r in rounds.items() if k != "attrs"),
                                                             key=lambda kr: int(kr[0]))]
    return s


def load_archive(path, logprobs=True):
    """Loads the whole archive into dicts of numpy arrays and Python values. logprobs=False leaves out the
    (large) /baseline/logprobs array. "search" and "sensitivity" are None when the archive has no such group."""
    with h5py.File(path, "r") as f:
        run = {"path": str(path), "attrs": _attrs(f), "runs": {}, "data": {}, "baseline": None, "plans": [],
               "feature_names": [], "search": None, "sensitivity": None}
        if "runs" in f:
            run["runs"] = {k: _attrs(g) for k, g in f["runs"].items()}
        if "data" in f:
            run["data"] = _load_data(f["data"])
        if "baseline" in f:
            b = _group_dict(f["baseline"], skip=() if logprobs else ("logprobs",))
            b["attrs"] = _attrs(f["baseline"])
            run["baseline"] = b
        if "plans" in f:
            _load_plans(f["plans"], run)
        if "search" in f:
            run["search"] = _load_search(f["search"])
        if "sensitivity" in f:
            run["sensitivity"] = _group_tree(f["sensitivity"])
        if "heldout" in f:
            run["heldout"] = _load_heldout(f["heldout"], str(path), logprobs)
        if "heal" in f:  # healed plans: {id: {"attrs": parent_id, settings, ..., "loss": curve, ...}}
            run["heal"] = _group_tree(f["heal"])
    return run


def _load_heldout(group, path, logprobs):
    """/heldout: a run-like dict of its data, baseline and plans (the /data, /baseline, /plans layout), plus the
    stage's "candidates" and "comparisons" trees (None when missing)."""
    h = {"path": path, "attrs": {}, "runs": {}, "data": {}, "baseline": None, "plans": [], "feature_names": [],
         "candidates": None, "comparisons": None}
    if "data" in group:
        h["data"] = _load_data(group["data"])
    if "baseline" in group:
        h["baseline"] = _group_dict(group["baseline"], skip=() if logprobs else ("logprobs",))
        h["baseline"]["attrs"] = _attrs(group["baseline"])
    if "plans" in group:
        _load_plans(group["plans"], h)
    for name in ("candidates", "comparisons"):
        if name in group:
            h[name] = _group_tree(group[name])
    return h


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


def plan_failed(plan):
    """True for a plan archived as failed (non-finite outputs; SCHEMA.md "Failed plans"): no metrics, not a pair."""
    return (plan or {}).get("attrs", {}).get("status") == "failed"


def failed_plans(run):
    """[{id, name, reason}] of the plans archived as failed."""
    return [{"id": p["id"], "name": p["attrs"].get("name"), "reason": p["attrs"].get("failure_reason")}
            for p in run["plans"] if plan_failed(p)]


def check_failed_plans(run):
    """A failed plan is complete, names its reason and holds no metric."""
    problems = []
    for p in run["plans"]:
        if not plan_failed(p):
            continue
        where = f"/plans/{p['id']} (failed)"
        if p["attrs"].get("complete") != 1:
            problems.append(f"{where}: complete attribute is not 1")
        if not p["attrs"].get("failure_reason"):
            problems.append(f"{where}: no failure_reason")
        problems += [f"{where}: holds metric group '{g}'" for g in ("summary", "tokens", "prompts", "mc") if g in p]
    return problems


def summary_table(run, complete_only=True):
    """One row per plan that has metrics: name, id, attributes and every summary scalar, as a dict of columns
    (failed plans: failed_plans)."""
    rows = []
    for p in run["plans"]:
        if (complete_only and p["attrs"].get("complete") != 1) or plan_failed(p):
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
        if p["attrs"].get("complete") != 1 or plan_failed(p):
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


# --- /search -------------------------------------------------------------------------------------------------


def _finite(x):
    return isinstance(x, (int, float)) and math.isfinite(x)


def plans_by_id(run):
    return {p["id"]: p for p in run["plans"]}


def plan_value(plan, key):
    """A plan's summary scalar `key` as float; NaN when the plan or the scalar is missing."""
    if plan is None or key is None:
        return NAN
    v = plan.get("summary", {}).get(key)
    return NAN if v is None else float(v)


def objective_key(objective):
    """Summary scalar of a train.objective (mean_fdt -> fdt_mean); None when unknown."""
    return OBJECTIVE_KEYS.get(objective)


def objective_maximised(objective):
    return objective == "mean_fdt"


def search_objective(run):
    """The objective of the last fit (/search/predictor), else of the sample stage; None without /search."""
    s = run["search"] or {}
    for group in ("predictor", "sample"):
        objective = s.get(group, {}).get("attrs", {}).get("objective")
        if objective:
            return objective
    return None


def complete_rounds(run):
    return [r for r in (run["search"] or {}).get("rounds", []) if r["attrs"].get("complete") == 1]


def searched_ids(run):
    """Ids measured in the complete search rounds, in round order."""
    return [pid for r in complete_rounds(run) for pid in r.get("ids", [])]


def search_pool_ids(run):
    """The search's pairs: the sampled plans, the uniform reference and the complete rounds' plans (the population
    the predictor is fit on and the Pareto front is taken over), complete plans only, first occurrence kept."""
    sample = (run["search"] or {}).get("sample", {})
    pool = list(sample.get("ids", [])) + [sample.get("attrs", {}).get("uniform_id")] + searched_ids(run)
    by_id = plans_by_id(run)
    return [pid for pid in dict.fromkeys(pool)
            if (by_id.get(pid) or {}).get("attrs", {}).get("complete") == 1 and not plan_failed(by_id.get(pid))]


def round_predictions(run):
    """id -> (the prediction a complete round chose it by, round index)."""
    out = {}
    for r in complete_rounds(run):
        for pid, value in zip(r.get("ids", []), r.get("predicted", [])):
            out[pid] = (float(value), r["index"])
    return out


def best_id(ids, value_of, maximised):
    """The first id with the best finite value (the search's own tie rule); None if there is none."""
    best, best_value = None, NAN
    for pid in ids:
        v = value_of(pid)
        if math.isfinite(v) and (best is None or (v > best_value if maximised else v < best_value)):
            best, best_value = pid, v
    return best


def predicted_objective(run, pid):
    """(prediction, where it comes from) for a plan: the prediction a search round chose it by, else
    /search/best's `predicted`, else its out-of-fold prediction of the last fit; (NaN, None) when unknown."""
    rounds = round_predictions(run)
    if pid in rounds:
        return rounds[pid][0], f"round {rounds[pid][1]}"
    s = run["search"] or {}
    best = s.get("best", {}).get("attrs", {})
    if best.get("id") == pid and _finite(best.get("predicted")):
        return float(best["predicted"]), "search/best"
    predictor = s.get("predictor", {})
    ids = list(predictor.get("ids", []))
    if pid in ids and "held_out_prediction" in predictor:
        return float(predictor["held_out_prediction"][ids.index(pid)]), "out-of-fold"
    return NAN, None


def _plan_row(run, by_id, pid, key):
    plan = by_id.get(pid)
    attrs = plan["attrs"] if plan else {}
    predicted, source = predicted_objective(run, pid)
    return {"id": pid, "name": attrs.get("name"), "sparsity": attrs.get("sparsity"),
            "measured": plan_value(plan, key), "predicted": predicted, "predicted_by": source}


def search_references(run):
    """Rows (role, id, name, sparsity, measured, predicted, predicted_by) for the uniform reference, the best
    random sample and the best searched plan (those the archive names)."""
    s = run["search"] or {}
    key, by_id = objective_key(search_objective(run)), plans_by_id(run)
    sample = s.get("sample", {}).get("attrs", {})
    best = s.get("best", {}).get("attrs", {})
    roles = [("uniform", sample.get("uniform_id")), ("best random", sample.get("best_random_id")),
             ("best searched", best.get("id"))]
    return [dict(_plan_row(run, by_id, pid, key), role=role) for role, pid in roles if pid]


def round_table(run):
    """One entry per round (complete or not): its plans with name, predicted and measured objective."""
    by_id = plans_by_id(run)
    out = []
    for r in (run["search"] or {}).get("rounds", []):
        rows = [{"id": pid, "name": (by_id.get(pid) or {}).get("attrs", {}).get("name"),
                 "predicted": float(pred), "measured": float(meas)}
                for pid, pred, meas in zip(r.get("ids", []), r.get("predicted", []), r.get("measured", []))]
        out.append({"index": r["index"], "complete": r["attrs"].get("complete") == 1, "plans": rows})
    return out


def pareto_table(run):
    """The stored Pareto front, by sparsity: id, name, sparsity, objective."""
    front = (run["search"] or {}).get("pareto", {})
    by_id = plans_by_id(run)
    return [{"id": pid, "name": (by_id.get(pid) or {}).get("attrs", {}).get("name"), "sparsity": float(sp),
             "objective": float(obj)}
            for pid, sp, obj in zip(front.get("ids", []), front.get("sparsity", []), front.get("objective", []))]


def predictor_scores(run):
    """Objective, folds, pairs and the cross-validated R², Spearman ρ and MAE of the last fit; None if absent."""
    p = (run["search"] or {}).get("predictor")
    if not p:
        return None
    a = p["attrs"]
    return {"objective": a.get("objective"), "folds": a.get("folds"), "pairs": a.get("pairs"),
            "r2": p.get("r2"), "spearman": p.get("spearman"), "mae": p.get("mae")}


def pareto_front(points, maximised):
    """Ids of the non-dominated (id, sparsity, value) points (higher sparsity and a better value dominate), by
    sparsity: the rule of pipelines/search.cpp, NaN values included as it treats them."""
    sign = -1.0 if maximised else 1.0
    front = [p for p in points
             if not any(q[1] >= p[1] and sign * q[2] <= sign * p[2] and (q[1] > p[1] or sign * q[2] < sign * p[2])
                        for q in points)]
    return [p[0] for p in sorted(front, key=lambda p: p[1])]


# --- /sensitivity --------------------------------------------------------------------------------------------


def sensitivity_axes(sens):
    """(steps, layers, components) of the sweep as Python lists."""
    return ([float(x) for x in sens.get("steps", [])], [int(x) for x in sens.get("layers", [])],
            list(sens.get("components", [])))


def sensitivity_threshold(sens):
    """FDT in tokens below which a cell counts as divergent: fdt_threshold × continuation."""
    a = sens["attrs"]
    return float(a.get("fdt_threshold", NAN)) * float(a.get("continuation", NAN))


def rank_components(sens):
    """The ranking recomputed from the FDT table, as pipelines/sensitivity.cpp does: (layer, component,
    first_divergent_step, fdt_mean), earliest divergent step first, then lower mean FDT, stable in table order."""
    steps, layers, comps = sensitivity_axes(sens)
    fdt = np.asarray(sens["fdt"], np.float64).reshape(len(layers), len(comps), len(steps))
    threshold = sensitivity_threshold(sens)
    rows = []
    for li, layer in enumerate(layers):
        for ci, comp in enumerate(comps):
            below = [k for k, v in enumerate(fdt[li, ci]) if v < threshold]
            mean = 0.0
            for v in fdt[li, ci]:
                mean += float(v) / len(steps)  # the C++ summation order, so ties compare equal
            rows.append((layer, comp, below[0] if below else len(steps), mean))
    return sorted(rows, key=lambda r: (r[2], r[3]))


def sensitivity_ranking(run):
    """The stored ranking as rows: rank, layer, component, first_divergent_step, diverges_at (the step's
    sparsity; None: never), fdt_mean, fdt (per step), int8_fdt and removed_fdt (None when not swept)."""
    sens = run["sensitivity"]
    steps, layers, comps = sensitivity_axes(sens)
    fdt = np.asarray(sens["fdt"], np.float64).reshape(len(layers), len(comps), len(steps))
    int8 = sens.get("int8", {}).get("fdt")
    r = sens.get("ranking", {})
    rows = []
    for i, (layer, comp, step, mean) in enumerate(zip(r.get("layer", []), r.get("component", []),
                                                      r.get("first_divergent_step", []), r.get("fdt_mean", []))):
        li, ci = layers.index(int(layer)), comps.index(comp)
        rows.append({"rank": i + 1, "layer": int(layer), "component": comp, "first_divergent_step": int(step),
                     "diverges_at": steps[int(step)] if 0 <= int(step) < len(steps) else None,
                     "fdt_mean": float(mean), "fdt": fdt[li, ci].tolist(),
                     "int8_fdt": None if int8 is None else float(np.asarray(int8)[li, ci])})
    return rows


def removed_layer_fdt(run):
    """[(layer, mean FDT with that layer removed)]; empty when the sweep removed no layer."""
    sens = run["sensitivity"]
    removed = sens.get("removed", {}).get("fdt")
    if removed is None:
        return []
    return [(layer, float(v)) for layer, v in zip(sensitivity_axes(sens)[1], removed)]


# --- consistency of /sensitivity and /search with /plans (--check) ------------------------------------------


def _same(a, b, rel=1e-12):
    """Equal within `rel`, NaN equal to NaN (a missing metric is stored as NaN)."""
    a, b = float(a), float(b)
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return abs(a - b) <= rel * max(1.0, abs(a), abs(b))


def _missing_plans(ids, by_id, where):
    return [f"{where}: plan {pid} is not a complete /plans group" for pid in dict.fromkeys(ids)
            if (by_id.get(pid) or {}).get("attrs", {}).get("complete") != 1]


def _check_metric_tables(tables, by_id, dims, where):
    """A sweep's plan_ids and its fdt/sdt/kl/perplexity tables against the referenced plans' summaries."""
    ids = list(tables.get("plan_ids", []))
    if len(ids) != int(np.prod(dims)):
        return [f"{where}/plan_ids: {len(ids)} ids for tables of shape {tuple(dims)}"]
    problems = _missing_plans(ids, by_id, f"{where}/plan_ids")
    for name, key in SENSITIVITY_METRICS.items():
        if name not in tables:
            problems.append(f"{where}/{name}: missing")
            continue
        values = np.asarray(tables[name], np.float64)
        if values.shape != tuple(dims):
            problems.append(f"{where}/{name}: shape {values.shape}, expected {tuple(dims)}")
            continue
        for i, (pid, v) in enumerate(zip(ids, values.reshape(-1))):
            expected = plan_value(by_id.get(pid), key)
            if pid in by_id and not _same(v, expected):
                cell = tuple(int(x) for x in np.unravel_index(i, dims))
                problems.append(f"{where}/{name}{list(cell)} = {v}, but /plans/{pid}/summary/{key} = {expected}")
    return problems


def _check_ranking(sens):
    r = sens.get("ranking", {})
    stored = list(zip([int(x) for x in r.get("layer", [])], list(r.get("component", [])),
                      [int(x) for x in r.get("first_divergent_step", [])], [float(x) for x in r.get("fdt_mean", [])]))
    expected = rank_components(sens)
    if len(stored) != len(expected):
        return [f"/sensitivity/ranking: {len(stored)} rows, expected layers x components = {len(expected)}"]
    wrong = [i for i, (s, e) in enumerate(zip(stored, expected)) if s[:3] != e[:3] or not _same(s[3], e[3], 1e-9)]
    if not wrong:
        return []
    i = wrong[0]
    return [f"/sensitivity/ranking: {len(wrong)} of {len(stored)} rows differ from the ranking recomputed from "
            f"/sensitivity/fdt; first, row {i}: stored (layer, component, step, fdt_mean) {stored[i]}, "
            f"recomputed {expected[i]}"]


def check_sensitivity(run):
    """Problems: /sensitivity tables that differ from the summaries of the plans they reference, or a ranking
    that does not follow from the FDT table."""
    sens = run["sensitivity"]
    if sens is None:
        return []
    by_id = plans_by_id(run)
    steps, layers, comps = sensitivity_axes(sens)
    problems = [] if sens["attrs"].get("complete") == 1 else ["/sensitivity: complete attribute is not 1"]
    problems += _check_metric_tables(sens, by_id, (len(layers), len(comps), len(steps)), "/sensitivity")
    if "int8" in sens:
        problems += _check_metric_tables(sens["int8"], by_id, (len(layers), len(comps)), "/sensitivity/int8")
    if "removed" in sens:
        problems += _check_metric_tables(sens["removed"], by_id, (len(layers),), "/sensitivity/removed")
    if "fdt" in sens and np.asarray(sens["fdt"]).size == len(layers) * len(comps) * len(steps):
        problems += _check_ranking(sens)
    return problems


def _check_rounds(run, by_id, key, maximised):
    problems, seen = [], set((run["search"].get("sample", {}).get("ids", [])))
    seen.add(run["search"].get("sample", {}).get("attrs", {}).get("uniform_id"))
    for r in complete_rounds(run):
        where = f"/search/rounds/{r['index']}"
        ids, predicted, measured = list(r.get("ids", [])), list(r.get("predicted", [])), list(r.get("measured", []))
        if not len(ids) == len(predicted) == len(measured):
            problems.append(f"{where}: {len(ids)} ids, {len(predicted)} predicted, {len(measured)} measured")
        problems += _missing_plans(ids, by_id, f"{where}/ids")
        for pid, value in zip(ids, measured):
            if pid in by_id and not _same(value, plan_value(by_id[pid], key)):
                problems.append(f"{where}/measured: {value} for {pid}, but /plans/{pid}/summary/{key} = "
                                f"{plan_value(by_id[pid], key)}")
        order = [-p if maximised else p for p in predicted]
        if order != sorted(order):
            problems.append(f"{where}/predicted: not best predicted first")
        problems += [f"{where}/ids: {pid} was measured before (sample or an earlier round)"
                     for pid in ids if pid in seen]
        seen.update(ids)
    return problems


def _check_best(run, by_id, key, maximised):
    best = run["search"].get("best")
    searched = searched_ids(run)
    if best is None:
        return []  # a search interrupted before its summary (search_notes)
    a, where = best["attrs"], "/search/best"
    expected = best_id(searched, lambda pid: plan_value(by_id.get(pid), key), maximised)
    if expected is None:
        return [] if "id" not in a else [f"{where}: id {a['id']} but no search round measured a plan"]
    if a.get("id") not in searched:
        return [f"{where}: id {a.get('id')} is not a plan of a complete search round"]
    plan, problems = by_id.get(a["id"]), []
    if not _same(plan_value(plan, key), plan_value(by_id.get(expected), key)):
        problems.append(f"{where}: {a['id']} measured {plan_value(plan, key)}, but {expected} measured "
                        f"{plan_value(by_id.get(expected), key)} (the best searched plan)")
    if not _same(a.get("objective", NAN), plan_value(plan, key)):
        problems.append(f"{where}: objective {a.get('objective')} != /plans/{a['id']}/summary/{key}")
    if plan and not _same(a.get("sparsity", NAN), plan["attrs"].get("sparsity", NAN)):
        problems.append(f"{where}: sparsity {a.get('sparsity')} != /plans/{a['id']} sparsity")
    for attr, plan_attr in (("name", "name"), ("yaml", "plan_yaml")):
        if plan and a.get(attr) != plan["attrs"].get(plan_attr):
            problems.append(f"{where}: {attr} differs from /plans/{a['id']} {plan_attr}")
    chosen = round_predictions(run).get(a["id"], (NAN,))[0]
    if "predicted" in a and not _same(a["predicted"], chosen):
        problems.append(f"{where}: predicted {a['predicted']}, but its round predicted {chosen}")
    return problems


def _check_sample(run, by_id):
    sample = run["search"].get("sample")
    if sample is None:
        return []
    a, ids = sample["attrs"], list(sample.get("ids", []))
    key = objective_key(a.get("objective"))
    problems = _missing_plans(ids + [a.get("uniform_id")], by_id, "/search/sample")
    expected = best_id(ids, lambda pid: plan_value(by_id.get(pid), key), objective_maximised(a.get("objective")))
    got = a.get("best_random_id")
    if got not in ids or not _same(plan_value(by_id.get(got), key), plan_value(by_id.get(expected), key)):
        problems.append(f"/search/sample: best_random_id {got} ({key} {plan_value(by_id.get(got), key)}) is not the "
                        f"best random sample {expected} ({plan_value(by_id.get(expected), key)})")
    return problems


def _check_baselines(run, by_id):
    """/search/baselines (pipelines/baselines.cpp): each named plan complete under /plans; random_search names the
    best of its plans by the baselines' objective, and its first plans are the sample stage's; the OWL outlier
    ratios are shares (finite, in [0, 1])."""
    b = run["search"].get("baselines")
    if b is None or b.get("attrs", {}).get("complete") != 1:
        return []
    a, names, ids = b["attrs"], list(b.get("names", [])), list(b.get("ids", []))
    key, maximised = objective_key(a.get("objective")), objective_maximised(a.get("objective"))
    if key is None:
        return [f"/search/baselines: objective {a.get('objective')!r} is not one of {', '.join(OBJECTIVE_KEYS)}"]
    if len(names) != len(ids):
        return [f"/search/baselines: {len(names)} names but {len(ids)} ids"]
    problems = _missing_plans(ids, by_id, "/search/baselines")
    if "random_search" in names:
        plans = list(b.get("random_search_ids", []))
        problems += _missing_plans(plans, by_id, "/search/baselines/random_search_ids")
        got = ids[names.index("random_search")]
        expected = best_id(plans, lambda pid: plan_value(by_id.get(pid), key), maximised)
        if got not in plans or not _same(plan_value(by_id.get(got), key), plan_value(by_id.get(expected), key)):
            problems.append(f"/search/baselines: random_search {got} ({key} {plan_value(by_id.get(got), key)}) is not "
                            f"the best of its plans {expected} ({plan_value(by_id.get(expected), key)})")
        sample_ids = list(run["search"].get("sample", {}).get("ids", []))
        if sample_ids and plans[:len(sample_ids)] != sample_ids:
            problems.append("/search/baselines/random_search_ids: its first plans are not the sample stage's")
    ratios = np.asarray(b.get("owl_outlier_ratio", []), np.float64)
    if "owl" in names and (ratios.size == 0 or not np.all(np.isfinite(ratios)) or ratios.min() < 0 or ratios.max() > 1):
        problems.append(f"/search/baselines/owl_outlier_ratio: {ratios.tolist()} are not shares in [0, 1]")
    return problems


def _spearman(a, b):
    """Spearman ρ with tied values sharing their mean rank (src/search/regression_metrics.cpp)."""
    def ranks(x):
        x = np.asarray(x, np.float64)
        order = np.argsort(x, kind="stable")
        out = np.empty(len(x))
        i = 0
        while i < len(x):
            j = i
            while j + 1 < len(x) and x[order[j + 1]] == x[order[i]]:
                j += 1
            out[order[i:j + 1]] = 0.5 * (i + j)
            i = j + 1
        return out
    ra, rb = ranks(a), ranks(b)
    ra, rb = ra - ra.mean(), rb - rb.mean()
    denom = math.sqrt(float((ra * ra).sum() * (rb * rb).sum()))
    return float((ra * rb).sum() / denom) if denom > 0 else 0.0


def _cv_scores(measured, predicted):
    y, p = np.asarray(measured, np.float64), np.asarray(predicted, np.float64)
    total = float(((y - y.mean()) ** 2).sum())
    return {"r2": 1.0 - float(((y - p) ** 2).sum()) / total if total > 0 else 0.0,
            "spearman": _spearman(y, p), "mae": float(np.abs(y - p).mean())}


def _check_predictor(run, by_id):
    p = run["search"].get("predictor")
    if p is None:
        return []
    ids, key = list(p.get("ids", [])), objective_key(p["attrs"].get("objective"))
    measured, held_out = list(p.get("measured", [])), list(p.get("held_out_prediction", []))
    if not len(ids) == len(measured) == len(held_out) == p["attrs"].get("pairs"):
        return [f"/search/predictor: {len(ids)} ids, {len(measured)} measured, {len(held_out)} predictions, "
                f"pairs attribute {p['attrs'].get('pairs')}"]
    problems = _missing_plans(ids, by_id, "/search/predictor/ids")
    problems += [f"/search/predictor/measured: {v} for {pid}, but /plans/{pid}/summary/{key} = "
                 f"{plan_value(by_id[pid], key)}" for pid, v in zip(ids, measured)
                 if pid in by_id and not _same(v, plan_value(by_id[pid], key))]
    if len(ids) > 1:
        for name, value in _cv_scores(measured, held_out).items():
            if not _same(p.get(name, NAN), value, 1e-9):
                problems.append(f"/search/predictor/{name}: stored {p.get(name)}, recomputed from measured and "
                                f"held_out_prediction {value}")
    return problems


def _check_pareto(run, by_id, key, maximised):
    front = run["search"].get("pareto")
    if front is None:
        return []  # a search interrupted before its summary (search_notes)
    problems = []
    for row in pareto_table(run):
        plan = by_id.get(row["id"])
        if plan is None or not _same(row["sparsity"], plan["attrs"].get("sparsity", NAN)) or \
                not _same(row["objective"], plan_value(plan, key)):
            problems.append(f"/search/pareto: {row['id']} sparsity {row['sparsity']} objective {row['objective']} "
                            f"differ from its /plans group")
    points = [(pid, float(by_id[pid]["attrs"].get("sparsity", NAN)), plan_value(by_id[pid], key))
              for pid in search_pool_ids(run)]
    expected = pareto_front(points, maximised)
    if sorted(front.get("ids", [])) != sorted(expected):
        problems.append(f"/search/pareto/ids: {list(front.get('ids', []))}, but the front over the search's plans "
                        f"(sample, uniform, rounds) is {expected}")
    if list(front.get("sparsity", [])) != sorted(front.get("sparsity", [])):
        problems.append("/search/pareto/sparsity: not in increasing order")
    return problems


def check_search(run):
    """Problems: /search rounds, best plan, sample references, predictor pairs and scores, and Pareto front that
    disagree with the /plans they name."""
    if run["search"] is None:
        return []
    objective = search_objective(run)
    key = objective_key(objective)
    if key is None:
        return [f"/search: objective {objective!r} is not one of {', '.join(OBJECTIVE_KEYS)}"]
    by_id, maximised = plans_by_id(run), objective_maximised(objective)
    return (_check_sample(run, by_id) + _check_baselines(run, by_id) + _check_predictor(run, by_id) +
            _check_rounds(run, by_id, key, maximised) + _check_best(run, by_id, key, maximised) +
            _check_pareto(run, by_id, key, maximised))


def search_notes(run):
    """Harmless departures from SCHEMA.md worth a mention (they do not fail --check)."""
    if run["search"] is None:
        return []
    notes = []
    missing = [g for g in ("best", "pareto") if g not in run["search"]]
    if complete_rounds(run) and missing:
        notes.append(f"search rounds are complete but {' and '.join('/search/' + g for g in missing)} "
                     f"{'is' if len(missing) == 1 else 'are'} missing (a search interrupted before its summary; "
                     f"a rerun of the search stage writes {'it' if len(missing) == 1 else 'them'})")
    best = run["search"].get("best", {}).get("attrs", {})
    if best.get("id") and "predicted" not in best:
        notes.append("/search/best has no `predicted` attribute (written by an older divprune); the round's "
                     "prediction is shown instead")
    pool = search_pool_ids(run)
    fitted = list(run["search"].get("predictor", {}).get("ids", pool))
    if run["search"].get("sample") and sorted(fitted) != sorted(pool):
        notes.append(f"/search/predictor was fit on {len(fitted)} pairs, not on the {len(pool)} plans of the sample "
                     f"and the complete rounds (a stage was rerun after the last fit?)")
    return notes


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
    for f in failed_plans(run):
        print(f"failed plan {f['name']} [{f['id']}]: {f['reason']}")
    incomplete = [p["attrs"].get("name") for p in run["plans"] if p["attrs"].get("complete") != 1]
    if incomplete:
        print(f"incomplete plans (interrupted run; a rerun redoes them): {', '.join(map(str, incomplete))}")


def _fmt(v, spec="{:.4g}", missing="-"):
    return missing if v is None or (isinstance(v, float) and math.isnan(v)) else spec.format(v)


def _print_references(rows):
    print(f"{'reference':<14} {'plan':<20} {'id':<16} {'sparsity':>8} {'measured':>10} {'predicted':>10}")
    for r in rows:
        source = f" ({r['predicted_by']})" if r["predicted_by"] else ""
        print(f"{r['role']:<14} {str(r['name'])[:20]:<20} {r['id']:<16} {_fmt(r['sparsity'], '{:.4f}'):>8} "
              f"{_fmt(r['measured']):>10} {_fmt(r['predicted']):>10}{source}")


def _print_rounds(rounds):
    for r in rounds:
        rows = r["plans"]
        state = "" if r["complete"] else " (incomplete: a rerun redoes it)"
        print(f"round {r['index']}: {len(rows)} plans, predicted vs measured{state}")
        for row in rows:
            print(f"  {str(row['name'])[:20]:<20} {row['id']:<16} predicted {_fmt(row['predicted']):>10} "
                  f"measured {_fmt(row['measured']):>10}  error {_fmt(row['measured'] - row['predicted'], '{:+.4g}')}")


def _print_search(run):
    s = run["search"]
    objective = search_objective(run)
    sample = s.get("sample", {}).get("attrs", {})
    direction = "maximised" if objective_maximised(objective) else "minimised"
    kind = str(sample.get("budget_kind", "sparsity"))  # absent: a linear-sparsity budget (src/archive/SCHEMA.md)
    budget = ("linear sparsity " + _fmt(sample.get('budget_sparsity'), '{:.3f}') if kind == "sparsity" else
              f"{'stored bytes' if kind == 'bytes' else kind} {_fmt(sample.get('budget_fraction'), '{:.3f}')}")
    print(f"\nsearch: objective {objective} ({objective_key(objective)}, {direction}), budget {budget} "
          f"± {_fmt(sample.get('budget_tolerance'), '{:.3f}')}{'' if kind == 'sparsity' else ' of the dense model'}, "
          f"{len(s.get('sample', {}).get('ids', []))} random samples, {len(s.get('rounds', []))} round(s)")
    _print_references(search_references(run))
    scores = predictor_scores(run)
    if scores:
        print(f"predictor ({scores['objective']}): {scores['pairs']} pairs, {scores['folds']}-fold CV R² "
              f"{_fmt(scores['r2'], '{:.3f}')}, Spearman ρ {_fmt(scores['spearman'], '{:.3f}')}, "
              f"MAE {_fmt(scores['mae'])}")
    _print_rounds(round_table(run))
    front = pareto_table(run)
    if "pareto" not in s:
        print("pareto front: not stored (the search stage writes it after its last round)")
        return
    print(f"pareto front ({len(front)} plans, linear sparsity vs {objective}):")
    for row in front:
        print(f"  {row['sparsity']:.4f} {_fmt(row['objective']):>10}  {str(row['name'])[:20]:<20} {row['id']}")


def _print_sensitivity(run):
    sens = run["sensitivity"]
    steps, layers, comps = sensitivity_axes(sens)
    a = sens["attrs"]
    print(f"\nsensitivity: {a.get('method')} pruning of one component at a time, {len(layers)} layer(s) x "
          f"{len(comps)} components x {len(steps)} step(s); diverges = first step with mean FDT < "
          f"{_fmt(sensitivity_threshold(sens), '{:.1f}')} of {a.get('continuation')} tokens")
    rows = sensitivity_ranking(run)
    int8 = "int8" in sens
    print(f"{'rank':>4} {'layer':>5} {'comp':<5} {'diverges':>8} " + " ".join(f"{'FDT@%g' % x:>8}" for x in steps) +
          (f" {'int8':>8}" if int8 else ""))
    for r in rows:
        cells = " ".join(f"{_fmt(v, '{:.2f}'):>8}" for v in r["fdt"])
        print(f"{r['rank']:>4} {r['layer']:>5} {r['component']:<5} {_fmt(r['diverges_at'], '{:g}', 'never'):>8} "
              f"{cells}" + (f" {_fmt(r['int8_fdt'], '{:.2f}'):>8}" if int8 else ""))
    removed = removed_layer_fdt(run)
    if removed:
        print("layer removed, mean FDT: " + ", ".join(f"L{layer} {fdt:.2f}" for layer, fdt in removed))


def _without(d, *keys):
    return {k: v for k, v in d.items() if k not in keys}


def search_json(run):
    """/search for --json: every dataset and attribute (the model JSON only as its length) plus the derived
    references, round table, Pareto table and predictor scores."""
    s = run["search"]
    predictor = s.get("predictor")
    doc = _without(s, "predictor", "rounds")
    doc["objective"] = search_objective(run)
    doc["objective_key"] = objective_key(doc["objective"])
    doc["maximised"] = objective_maximised(doc["objective"])
    if predictor is not None:
        doc["predictor"] = _without(predictor, "model_json")
        doc["predictor"]["model_json_chars"] = sum(len(m) for m in predictor.get("model_json", []))
    doc["rounds"] = round_table(run)
    doc["references"] = search_references(run)
    doc["pareto_table"] = pareto_table(run)
    doc["scores"] = predictor_scores(run)
    return doc


def sensitivity_json(run):
    """/sensitivity for --json: every dataset and attribute plus the ranking as rows and the removal FDTs."""
    doc = dict(run["sensitivity"])
    doc["ranking_table"] = sensitivity_ranking(run)
    doc["removed_fdt"] = [{"layer": layer, "fdt": fdt} for layer, fdt in removed_layer_fdt(run)]
    return doc


def summary_deviations(run):
    """Stored plan summaries that differ from the values recomputed from the stored arrays."""
    deviations = []
    for plan, key, stored, value in recompute(run):
        tol = 1e-6 * max(1.0, abs(value)) if "perplexity" not in key else 1e-6 * abs(value)
        if key.startswith(("kl_", "dp_")):
            tol = 1e-9 + 1e-6 * abs(value)
        if stored is None or not (abs(stored - value) <= tol):
            deviations.append(f"plan {plan}: {key} stored {stored} recomputed {value}")
    return deviations


def dataset_names(path):
    names = []
    with h5py.File(path, "r") as f:
        f.visititems(lambda name, obj: names.append(name) if isinstance(obj, h5py.Dataset) else None)
    return names


def check_heldout(run):
    """/heldout against its plans and against /plans: every candidate's selection and held-out objective, the
    best on held-out numbers, and every interval recomputed with analysis/bootstrap.py (the numpy twin of
    src/metrics/bootstrap.hpp: identical for mean differences)."""
    h = run.get("heldout")
    if not h or not h["candidates"] or h["candidates"]["attrs"].get("complete") != 1:
        return []
    sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parent))
    from bootstrap import paired_bootstrap
    problems, c = [], h["candidates"]
    objective = c["attrs"]["objective"]
    key, maximised = objective_key(objective), objective_maximised(objective)
    sel, held = plans_by_id(run), plans_by_id(h)
    for role, pid, s_val, h_val in zip(c["roles"], c["ids"], c["selection"], c["heldout"]):
        for where, by_id, value in (("/plans", sel, s_val), ("/heldout/plans", held, h_val)):
            if not _same(plan_value(by_id.get(pid), key), value):
                problems.append(f"/heldout/candidates {role} {pid}: {value} is not {key} of {where}/{pid}")
    searched = [(v, pid) for r, pid, v in zip(c["roles"], c["ids"], c["heldout"]) if r.startswith("search_")]
    best = c["attrs"]["best_id"]
    want = max(v for v, _ in searched) if maximised else min(v for v, _ in searched)
    if not any(pid == best and v == want for v, pid in searched):
        problems.append(f"/heldout/candidates: best_id {best} is not the searched candidate best on held-out data")
    r = h["comparisons"]
    if not r or r["attrs"].get("complete") != 1:
        return problems + ["/heldout/comparisons: missing or incomplete"]
    a = r["attrs"]
    array = {"mean_fdt": ("prompts", "fdt"), "mean_kl": ("tokens", "kl"), "perplexity": ("tokens", "nll")}[objective]
    units = lambda pid: np.asarray(held[pid][array[0]][array[1]], np.float64)
    for i, (role, pid) in enumerate(zip(r["roles"], r["ids"])):
        x, y = (units(best), units(pid)) if maximised else (units(pid), units(best))
        got = paired_bootstrap(x, y, a["statistic"], int(a["resamples"]), int(a["seed"]))
        stored = (r["estimate"][i], r["lower"][i], r["upper"][i])
        if any(not _same(g, float(v)) for g, v in zip(got, stored)):
            problems.append(f"/heldout/comparisons {role}: stored {stored}, numpy bootstrap {got}")
    return problems


def findings(run):
    """Everything --check looks at: problems (schema), deviations (summaries vs arrays, also of /heldout/plans),
    inconsistencies (/search, /sensitivity and /heldout vs the plans) fail it; notes do not."""
    deviations = summary_deviations(run)
    if run.get("heldout") and run["heldout"]["baseline"] is not None:
        deviations += [f"/heldout: {d}" for d in summary_deviations(run["heldout"])]
    return {"problems": check_archive(run["path"]), "deviations": deviations,
            "inconsistencies": check_failed_plans(run) + check_sensitivity(run) + check_search(run) + check_heldout(run),
            "notes": search_notes(run)}


def json_document(run, table, datasets, found):
    doc = {
        "root": run["attrs"],
        "datasets": len(datasets),
        "baseline": None if run["baseline"] is None else {
            "attrs": run["baseline"]["attrs"], "summary": run["baseline"].get("summary", {})},
        "plans": [{"id": p["id"], "name": p["attrs"].get("name"), "complete": p["attrs"].get("complete"),
                   "run_index": p["attrs"].get("run_index"), "sparsity": p["attrs"].get("sparsity"),
                   "source": p["attrs"].get("source"), "summary": p.get("summary", {}),
                   "status": p["attrs"].get("status", "ok"), "failure_reason": p["attrs"].get("failure_reason"),
                   "fdt": p.get("prompts", {}).get("fdt"), "kl": p.get("tokens", {}).get("kl")}
                  for p in run["plans"]],
        "table": table,
        "failed_plans": failed_plans(run),
        "search": None if run["search"] is None else search_json(run),
        "sensitivity": None if run["sensitivity"] is None else sensitivity_json(run),
        "heldout": heldout_json(run),
    }
    doc.update(found)
    return _clean(doc)


def heldout_json(run):
    """/heldout/candidates and /heldout/comparisons as row lists (None without a complete heldout stage)."""
    h = run.get("heldout")
    if not h or not h["candidates"] or not h["comparisons"]:
        return None
    c, r = h["candidates"], h["comparisons"]
    return {"objective": c["attrs"].get("objective"), "best_id": c["attrs"].get("best_id"),
            "candidates": [dict(zip(("role", "id", "name", "sparsity", "selection", "heldout"), row))
                           for row in zip(c["roles"], c["ids"], c["names"], c["sparsity"], c["selection"], c["heldout"])],
            "comparisons": [dict(zip(("role", "id", "estimate", "lower", "upper", "n"), row))
                            for row in zip(r["roles"], r["ids"], r["estimate"], r["lower"], r["upper"], r["n"])],
            "units": r["attrs"].get("units"), "statistic": r["attrs"].get("statistic"),
            "resamples": r["attrs"].get("resamples"), "seed": r["attrs"].get("seed")}


def _print_heldout(run):
    h = heldout_json(run)
    if h is None:
        return
    print(f"\nheld-out confirmation ({h['objective']}): selection vs held-out objective")
    for c in h["candidates"]:
        mark = "  <- best on held-out" if c["id"] == h["best_id"] and c["role"].startswith("search_") else ""
        print(f"  {c['role']:<12} {c['name'][:20]:<20} {c['id']:>16} {c['sparsity']:8.4f} {c['selection']:12.5g} "
              f"{c['heldout']:12.5g}{mark}")
    for r in h["comparisons"]:
        print(f"  best vs {r['role']:<12} improvement {r['estimate']:.5g} (95% CI [{r['lower']:.5g}, {r['upper']:.5g}]) "
              f"over {r['n']} {h['units']}, {h['resamples']} resamples")


def print_report(run, table, datasets, found):
    _print_table(run, table)
    if run["search"] is not None:
        _print_search(run)
    if run["sensitivity"] is not None:
        _print_sensitivity(run)
    _print_heldout(run)
    print(f"{len(datasets)} datasets read")
    for line in found["problems"] + found["deviations"] + found["inconsistencies"]:
        print("problem:", line)
    for line in found["notes"]:
        print("note:", line)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("archive")
    parser.add_argument("--json", action="store_true", help="print a JSON document instead of the tables")
    parser.add_argument("--no-logprobs", action="store_true", help="do not load /baseline/logprobs (large)")
    parser.add_argument("--check", action="store_true",
                        help="exit 1 if a dataset lacks units/description, a summary disagrees with its arrays, or "
                             "/search or /sensitivity disagrees with the plans it names")
    args = parser.parse_args(argv)

    try:
        run = load_archive(args.archive, logprobs=not args.no_logprobs)
        datasets = dataset_names(args.archive)
    except (OSError, KeyError, ValueError) as e:
        print(f"{args.archive}: cannot read the archive: {e}", file=sys.stderr)
        return 2
    table = summary_table(run)
    found = findings(run)
    if args.json:
        print(json.dumps(json_document(run, table, datasets, found)))
    else:
        print_report(run, table, datasets, found)
    if args.check and (found["problems"] or found["deviations"] or found["inconsistencies"]):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
