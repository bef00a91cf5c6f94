#!/usr/bin/env python3
"""Compare two divprune run archives plan by plan (e.g. the CUDA backend against the CPU backend).

    /usr/bin/python3 analysis/compare_archives.py A.h5 B.h5                 # table, exit 1 on any FAIL
    /usr/bin/python3 analysis/compare_archives.py A.h5 B.h5 --json out.json # the same, also as JSON
    ... --ppl-rel 0.005 --kl-rel 0.05 --kl-abs 2e-6 --top1 0.01 --fdt 1    # the tolerances (these defaults)

B is the reference: relative differences are taken against B's value. Plans are matched by their id
(/plans/<id>, the hash of the canonical plan, src/archive/SCHEMA.md), and for each plan present in both the
summary scalars (/plans/<id>/summary/<name>) are compared:

    perplexity       |a - b| <= ppl_rel * |b|
    kl_mean          |a - b| <= kl_rel * |b|  or  |a - b| <= kl_abs   (the base plan's KL is ~1e-7 nats:
                     fp16 storage noise, where only an absolute bound makes sense)
    same_top1_rate   |a - b| <= top1
    fdt_mean         |a - b| <= fdt   (tokens)
    tokens, prompts  equal (both runs must have measured the same positions)

A plan present on one side only, a plan not marked complete, or a metric present on one side only is a FAIL.
A metric absent on both sides (the run did not measure it) is listed as n/a and does not fail.

Exit status: 0 every check passed, 1 some check failed, 2 bad input (unreadable file, no /plans group).
"""
import argparse
import json
import math
import sys

try:
    import h5py
except ImportError:
    print("compare_archives.py: needs h5py (Debian: python3-h5py; try /usr/bin/python3)", file=sys.stderr)
    sys.exit(2)


class InputError(Exception):
    pass


def _text(x):
    if isinstance(x, bytes):
        return x.decode("utf-8")
    if hasattr(x, "item"):
        x = x.item()
    return x.decode("utf-8") if isinstance(x, bytes) else x


def read_plans(path):
    """{plan id: {"name", "complete", "summary": {name: float}}} of one archive."""
    try:
        f = h5py.File(path, "r")
    except OSError as e:
        raise InputError(f"{path}: not a readable HDF5 file ({e})")
    with f:
        if "plans" not in f:
            raise InputError(f"{path}: no /plans group (not a divprune run archive, or a run without plans)")
        plans = {}
        for plan_id, group in f["plans"].items():
            if not isinstance(group, h5py.Group):  # /plans/feature_names is a dataset
                continue
            summary = {}
            if "summary" in group:
                for name, ds in group["summary"].items():
                    summary[name] = float(ds[()])
            plans[plan_id] = {
                "name": _text(group.attrs.get("name", plan_id)),
                "complete": bool(group.attrs.get("complete", False)),
                "order": int(group.attrs.get("order", -1)),
                "summary": summary,
            }
        return plans


def metric_rules(tol):
    """(summary name, tolerance description, check(a, b) -> bool) of each compared metric."""
    def rel(limit):
        return lambda a, b: abs(a - b) <= limit * abs(b)

    def absolute(limit):
        return lambda a, b: abs(a - b) <= limit

    def equal(a, b):
        return a == b

    return [
        ("perplexity", f"rel {tol.ppl_rel:g}", rel(tol.ppl_rel)),
        ("kl_mean", f"rel {tol.kl_rel:g} or abs {tol.kl_abs:g}",
         lambda a, b: rel(tol.kl_rel)(a, b) or absolute(tol.kl_abs)(a, b)),
        ("same_top1_rate", f"abs {tol.top1:g}", absolute(tol.top1)),
        ("fdt_mean", f"abs {tol.fdt:g}", absolute(tol.fdt)),
        ("tokens", "equal", equal),
        ("prompts", "equal", equal),
    ]


def compare(plans_a, plans_b, tol):
    """A list of rows, one per (plan, check); each row has status PASS, FAIL or n/a."""
    rules = metric_rules(tol)
    rows = []
    ids = sorted(set(plans_a) | set(plans_b),
                 key=lambda i: ((plans_b.get(i) or plans_a[i])["order"], (plans_b.get(i) or plans_a[i])["name"], i))
    for plan_id in ids:
        a, b = plans_a.get(plan_id), plans_b.get(plan_id)
        name = (b or a)["name"]
        base = {"plan": name, "id": plan_id}
        if a is None or b is None:
            rows.append({**base, "metric": "present", "a": a is not None, "b": b is not None,
                         "tolerance": "both", "status": "FAIL"})
            continue
        if not (a["complete"] and b["complete"]):
            rows.append({**base, "metric": "complete", "a": a["complete"], "b": b["complete"],
                         "tolerance": "both", "status": "FAIL"})
        for metric, described, check in rules:
            va, vb = a["summary"].get(metric), b["summary"].get(metric)
            row = {**base, "metric": metric, "a": va, "b": vb, "tolerance": described}
            if va is None and vb is None:
                row["status"] = "n/a"
            elif va is None or vb is None or math.isnan(va) or math.isnan(vb):
                both_nan = va is not None and vb is not None and math.isnan(va) and math.isnan(vb)
                row["status"] = "n/a" if both_nan else "FAIL"
            else:
                row["diff"] = va - vb
                row["status"] = "PASS" if check(va, vb) else "FAIL"
            rows.append(row)
    return rows


def _cell(v):
    if v is None:
        return "missing"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:.6g}"
    return str(v)


def print_table(rows, path_a, path_b):
    print(f"A: {path_a}\nB: {path_b} (reference)\n")
    header = ("plan", "metric", "A", "B", "A - B", "tolerance", "")
    body = [(r["plan"], r["metric"], _cell(r["a"]), _cell(r["b"]),
             f"{r['diff']:+.3g}" if "diff" in r else "", r["tolerance"], r["status"]) for r in rows]
    widths = [max(len(str(x[i])) for x in [header] + body) for i in range(len(header))]
    for line in [header] + body:
        print("  ".join(str(x).ljust(w) for x, w in zip(line, widths)).rstrip())


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("a", help="archive to check (e.g. the CUDA run)")
    parser.add_argument("b", help="reference archive (e.g. the CPU run)")
    parser.add_argument("--ppl-rel", type=float, default=0.005, help="perplexity, relative (default 0.005)")
    parser.add_argument("--kl-rel", type=float, default=0.05, help="kl_mean, relative (default 0.05)")
    parser.add_argument("--kl-abs", type=float, default=2e-6, help="kl_mean, absolute nats (default 2e-6)")
    parser.add_argument("--top1", type=float, default=0.01, help="same_top1_rate, absolute (default 0.01)")
    parser.add_argument("--fdt", type=float, default=1.0, help="fdt_mean, absolute tokens (default 1)")
    parser.add_argument("--json", metavar="PATH", help="also write the rows and the verdict as JSON")
    args = parser.parse_args(argv)

    try:
        plans_a, plans_b = read_plans(args.a), read_plans(args.b)
    except InputError as e:
        print(f"compare_archives.py: {e}", file=sys.stderr)
        return 2
    if not plans_a and not plans_b:
        print("compare_archives.py: neither archive has a plan", file=sys.stderr)
        return 2

    rows = compare(plans_a, plans_b, args)
    failed = [r for r in rows if r["status"] == "FAIL"]
    print_table(rows, args.a, args.b)
    plans = len(set(plans_a) | set(plans_b))
    verdict = "PASS" if not failed else "FAIL"
    print(f"\n{verdict}: {plans} plans, {sum(r['status'] == 'PASS' for r in rows)} checks passed, "
          f"{len(failed)} failed")
    if args.json:
        doc = {"a": args.a, "b": args.b, "verdict": verdict, "plans": plans, "failed": len(failed),
               "tolerances": {k: getattr(args, k) for k in ("ppl_rel", "kl_rel", "kl_abs", "top1", "fdt")},
               "rows": rows}
        with open(args.json, "w") as f:
            json.dump(doc, f, indent=2)
            f.write("\n")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
