#!/usr/bin/env python3
"""Plots of a divprune run archive (src/archive/SCHEMA.md), as PNG files, with matplotlib (Agg) over read_archive.

    /usr/bin/python3 analysis/plots.py RUN.h5 --out plots/

Writes, for each group the archive holds (the others are skipped, and said so):

    sensitivity_fdt.png              /sensitivity: mean FDT heatmaps, layers x components, one panel per step,
                                     plus the int8 and the layer-removal panels when the sweep has them
    search_objective_vs_sparsity.png /search: every complete plan's measured objective vs linear sparsity, the
                                     samples, uniform, best random, each search round, the best searched plan and
                                     the Pareto front marked, the budget band shaded
    predictor_cv.png                 /search/predictor: out-of-fold prediction vs measured, R², ρ, MAE in the title
    search_rounds.png                /search/rounds: predicted vs measured per plan, and per round
    heldout_comparison.png           /heldout: each candidate's objective on the selection vs the held-out data,
                                     and the best's improvement over each reference with its 95% bootstrap interval

Exit status: 0 when at least one plot was written; 1 when the archive holds nothing to plot; 2 when it cannot be
read.
"""
import argparse
import math
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import read_archive as ra  # noqa: E402

ANNOTATE_MAX_CELLS = 160  # heatmap panels with more cells are not annotated with their values


# --- sensitivity ---------------------------------------------------------------------------------------------


def _heatmap(ax, values, title, xlabels, ylabels, vmax, annotate):
    image = ax.imshow(values, vmin=0.0, vmax=vmax, cmap="viridis", aspect="auto", interpolation="nearest")
    ax.set_title(title, fontsize=10)
    ax.set_xticks(range(len(xlabels)), xlabels, fontsize=8)
    ax.set_yticks(range(len(ylabels)), ylabels, fontsize=8)
    if annotate:
        for (i, j), v in np.ndenumerate(values):
            text = "nan" if math.isnan(v) else f"{v:.1f}"
            ax.text(j, i, text, ha="center", va="center", fontsize=7, color="white" if v < 0.6 * vmax else "black")
    return image


def _sensitivity_panels(sens):
    """(title, table, column labels) of every panel: each step, then int8 and layer removal when swept."""
    steps, layers, comps = ra.sensitivity_axes(sens)
    fdt = np.asarray(sens["fdt"], np.float64).reshape(len(layers), len(comps), len(steps))
    panels = [(f"{sens['attrs'].get('method')} {step:g}", fdt[:, :, k], comps) for k, step in enumerate(steps)]
    if "int8" in sens:
        panels.append(("int8", np.asarray(sens["int8"]["fdt"], np.float64).reshape(len(layers), len(comps)), comps))
    if "removed" in sens:
        panels.append(("layer removed", np.asarray(sens["removed"]["fdt"], np.float64).reshape(len(layers), 1),
                       ["layer"]))
    return panels


def plot_sensitivity(run, path):
    sens = run["sensitivity"]
    _, layers, comps = ra.sensitivity_axes(sens)
    n = float(sens["attrs"].get("continuation", 0)) or None
    panels = _sensitivity_panels(sens)
    widths = [max(1.2, 0.45 * len(cols)) for _, _, cols in panels]
    fig, axes = plt.subplots(1, len(panels), figsize=(1.5 + sum(widths) + 0.3 * len(panels),
                                                      1.6 + min(12.0, 0.32 * len(layers))),
                             gridspec_kw={"width_ratios": widths}, squeeze=False)
    vmax = n if n else max(float(np.nanmax(t)) for _, t, _ in panels)
    image = None
    for ax, (title, table, cols) in zip(axes[0], panels):
        image = _heatmap(ax, table, title, cols, [str(x) for x in layers], vmax,
                         table.size <= ANNOTATE_MAX_CELLS)
    axes[0][0].set_ylabel("layer")
    fig.colorbar(image, ax=axes[0].tolist(), label=f"mean FDT (tokens of {sens['attrs'].get('continuation')})")
    fig.suptitle(f"sensitivity: mean first divergent token, one component compressed at a time "
                 f"(diverges below {ra.sensitivity_threshold(sens):.1f})", fontsize=10,
                 y=1.0 + 0.35 / fig.get_figheight())
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)


# --- search --------------------------------------------------------------------------------------------------


def _search_roles(run):
    """id -> role label of every plan /search names: sample, uniform, round r (later roles win)."""
    s = run["search"]
    roles = {pid: "random sample" for pid in s.get("sample", {}).get("ids", [])}
    uniform = s.get("sample", {}).get("attrs", {}).get("uniform_id")
    if uniform:
        roles[uniform] = "uniform"
    for r in ra.complete_rounds(run):
        for pid in r.get("ids", []):
            roles[pid] = f"round {r['index']}"
    return roles


def _plan_points(run, key):
    """(id, sparsity, objective) of every complete plan with a finite objective."""
    points = []
    for p in run["plans"]:
        value = ra.plan_value(p, key)
        if p["attrs"].get("complete") == 1 and math.isfinite(value):
            points.append((p["id"], float(p["attrs"].get("sparsity", math.nan)), value))
    return points


def _scatter_group(ax, points, ids, **style):
    chosen = [(x, y) for pid, x, y in points if pid in ids]
    if chosen:
        xs, ys = zip(*chosen)
        ax.scatter(xs, ys, **style)


def _mark_references(ax, run, points):
    marks = {"uniform": dict(marker="s", s=70, color="black"), "best random": dict(marker="D", s=70, color="tab:blue"),
             "best searched": dict(marker="*", s=220, color="tab:red")}
    for row in ra.search_references(run):
        _scatter_group(ax, points, {row["id"]}, label=f"{row['role']} ({row['name']})", zorder=5,
                       edgecolors="white", linewidths=0.8, **marks[row["role"]])


def plot_search(run, path):
    objective = ra.search_objective(run)
    key = ra.objective_key(objective)
    points = _plan_points(run, key)
    roles = _search_roles(run)
    fig, ax = plt.subplots(figsize=(8, 5.5))
    sample = run["search"].get("sample", {}).get("attrs", {})
    # The band only for a linear-sparsity budget (the x axis); a bytes / parameters budget has no band on it.
    if "budget_sparsity" in sample and str(sample.get("budget_kind", "sparsity")) == "sparsity":
        centre, tolerance = sample["budget_sparsity"], sample["budget_tolerance"]
        ax.axvspan(centre - tolerance, centre + tolerance, color="tab:green", alpha=0.08, label="budget")
    sources = {p["id"]: str(p["attrs"].get("source", "")) for p in run["plans"]}
    others = {pid for pid, *_ in points if pid not in roles}
    sweep = {pid for pid in others if sources[pid].startswith("sensitivity")}
    _scatter_group(ax, points, sweep, marker="x", s=18, color="0.7", label="sensitivity sweep")
    _scatter_group(ax, points, others - sweep, marker="+", s=24, color="0.6", label="other plans")
    _scatter_group(ax, points, {pid for pid, role in roles.items() if role == "random sample"}, s=18, color="0.45",
                   label="random samples")
    colors = plt.get_cmap("viridis")
    rounds = ra.complete_rounds(run)
    for i, r in enumerate(rounds):
        _scatter_group(ax, points, set(r.get("ids", [])), marker="^", s=34,
                       color=colors(0.15 + 0.7 * i / max(1, len(rounds) - 1)), label=f"search round {r['index']}")
    front = ra.pareto_table(run)
    if front:
        ax.plot([f["sparsity"] for f in front], [f["objective"] for f in front], "--", color="tab:orange",
                marker="o", markerfacecolor="none", markersize=9, label="Pareto front", zorder=4)
    _mark_references(ax, run, points)
    if objective == "mean_kl" and all(y > 0 for *_, y in points):
        ax.set_yscale("log")
    ax.set_xlabel("linear sparsity")
    ax.set_ylabel(f"{objective} ({key}, {'higher' if ra.objective_maximised(objective) else 'lower'} is better)")
    ax.set_title(f"search: measured {objective} of {len(points)} plans")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1.0))
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)


def plot_predictor(run, path):
    p = run["search"]["predictor"]
    scores = ra.predictor_scores(run)
    measured = np.asarray(p["measured"], np.float64)
    predicted = np.asarray(p["held_out_prediction"], np.float64)
    roles = _search_roles(run)
    labels = [roles.get(pid, "other") for pid in p.get("ids", [])]
    fig, ax = plt.subplots(figsize=(6, 6))
    for label in dict.fromkeys(labels):
        mask = np.array([x == label for x in labels])
        ax.scatter(measured[mask], predicted[mask], s=22, label=label)
    lo, hi = float(np.nanmin([measured.min(), predicted.min()])), float(np.nanmax([measured.max(), predicted.max()]))
    ax.plot([lo, hi], [lo, hi], "--", color="0.5", label="prediction = measurement")
    ax.set_xlabel(f"measured {scores['objective']}")
    ax.set_ylabel(f"out-of-fold prediction ({scores['folds']}-fold CV)")
    ax.set_title(f"predictor on {scores['pairs']} pairs: R² = {scores['r2']:.3f}, ρ = {scores['spearman']:.3f}, "
                 f"MAE = {scores['mae']:.3g}", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)


def _round_panel(ax, rounds, objective):
    colors = plt.get_cmap("viridis")
    values = []
    for i, r in enumerate(rounds):
        pred = [row["predicted"] for row in r["plans"]]
        meas = [row["measured"] for row in r["plans"]]
        values += pred + meas
        ax.scatter(pred, meas, s=30, color=colors(0.15 + 0.7 * i / max(1, len(rounds) - 1)),
                   label=f"round {r['index']}")
    finite = [v for v in values if math.isfinite(v)]
    if finite:
        ax.plot([min(finite), max(finite)], [min(finite), max(finite)], "--", color="0.5", label="measured = predicted")
    ax.set_xlabel(f"predicted {objective} (when chosen)")
    ax.set_ylabel(f"measured {objective}")
    ax.set_title("each searched plan", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)


def _progress_panel(ax, run, rounds, objective):
    best = max if ra.objective_maximised(objective) else min
    x = [r["index"] for r in rounds]
    ax.plot(x, [np.mean([row["predicted"] for row in r["plans"]]) for r in rounds], "o--", label="mean predicted")
    ax.plot(x, [np.mean([row["measured"] for row in r["plans"]]) for r in rounds], "o-", label="mean measured")
    ax.plot(x, [best(row["measured"] for row in r["plans"]) for r in rounds], "*-", markersize=10,
            label="best measured")
    for row, color in zip(ra.search_references(run), ("black", "tab:blue", "tab:red")):
        if math.isfinite(row["measured"]):
            ax.axhline(row["measured"], color=color, lw=0.8, ls=":", label=f"{row['role']} (measured)")
    ax.set_xticks(x)
    ax.set_xlabel("search round")
    ax.set_ylabel(objective)
    ax.set_title("per round", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)


def plot_rounds(run, path):
    objective = ra.search_objective(run)
    rounds = [r for r in ra.round_table(run) if r["complete"] and r["plans"]]
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 5))
    _round_panel(left, rounds, objective)
    _progress_panel(right, run, rounds, objective)
    fig.suptitle(f"search rounds: predicted vs measured {objective}", fontsize=11)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)


# --- held-out confirmation -----------------------------------------------------------------------------------


def plot_heldout(run, path):
    h = ra.heldout_json(run)
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.8))
    rows = h["candidates"]
    x = np.arange(len(rows))
    left.bar(x - 0.2, [r["selection"] for r in rows], 0.4, label="selection data", color="#9aa7b8")
    left.bar(x + 0.2, [r["heldout"] for r in rows], 0.4, label="held-out data", color="#2f6db5")
    left.set_xticks(x, [f"{r['role']}\n{r['name'][:14]}" for r in rows], fontsize=7)
    left.set_ylabel(h["objective"])
    left.set_title("candidates: selection vs held-out objective")
    left.legend(fontsize=8)
    comps = h["comparisons"]
    y = np.arange(len(comps))
    est = np.array([c["estimate"] for c in comps])
    err = np.array([[c["estimate"] - c["lower"] for c in comps], [c["upper"] - c["estimate"] for c in comps]])
    right.errorbar(est, y, xerr=err, fmt="o", color="#2f6db5", capsize=4)
    right.axvline(0.0, color="0.4", lw=0.8, ls="--")
    right.set_yticks(y, [f"vs {c['role']}" for c in comps])
    right.set_ylim(-0.6, len(comps) - 0.4)
    right.set_xlabel(f"improvement of the held-out best ({h['statistic']}, > 0: better)")
    right.set_title(f"95% paired bootstrap over {comps[0]['n'] if comps else 0} {h['units']}, {h['resamples']} resamples")
    fig.tight_layout()
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)


# --- what can be drawn ---------------------------------------------------------------------------------------


def _why_not_sensitivity(run):
    sens = run["sensitivity"]
    if sens is None:
        return "no /sensitivity group"
    if "fdt" not in sens or not np.asarray(sens["fdt"]).size:
        return "/sensitivity has no fdt table"
    return None


def _why_not_search(run):
    if run["search"] is None:
        return "no /search group"
    if ra.objective_key(ra.search_objective(run)) is None:
        return "/search names no known objective (no /search/sample or /search/predictor)"
    return None


def _why_not_predictor(run):
    why = _why_not_search(run)
    if why:
        return why
    p = run["search"].get("predictor")
    if p is None or p["attrs"].get("complete") != 1:
        return "no complete /search/predictor group"
    return None if len(p.get("measured", [])) > 1 else "/search/predictor has fewer than 2 pairs"


def _why_not_rounds(run):
    why = _why_not_search(run)
    if why:
        return why
    return None if any(r["plans"] for r in ra.round_table(run) if r["complete"]) else "no complete /search/rounds"


def _why_not_heldout(run):
    return None if ra.heldout_json(run) is not None else "no complete /heldout/candidates and /heldout/comparisons"


PLOTS = [  # file name, the reason it cannot be drawn (None: it can), how to draw it
    ("sensitivity_fdt.png", _why_not_sensitivity, plot_sensitivity),
    ("search_objective_vs_sparsity.png", _why_not_search, plot_search),
    ("predictor_cv.png", _why_not_predictor, plot_predictor),
    ("search_rounds.png", _why_not_rounds, plot_rounds),
    ("heldout_comparison.png", _why_not_heldout, plot_heldout),
]


def write_plots(run, out):
    """Draws every plot the archive supports into `out`; returns (written paths, [(file, why skipped)])."""
    os.makedirs(out, exist_ok=True)
    written, skipped = [], []
    for name, why_not, draw in PLOTS:
        why = why_not(run)
        if why:
            skipped.append((name, why))
            continue
        path = os.path.join(out, name)
        draw(run, path)
        written.append(path)
    return written, skipped


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("archive")
    parser.add_argument("--out", required=True, help="directory for the PNG files (created if missing)")
    args = parser.parse_args(argv)
    try:
        run = ra.load_archive(args.archive, logprobs=False)
    except (OSError, KeyError, ValueError) as e:
        print(f"plots.py: {args.archive}: cannot read the archive: {e}", file=sys.stderr)
        return 2
    written, skipped = write_plots(run, args.out)
    for name, why in skipped:
        print(f"skipped {name}: {why}")
    if not written:
        reasons = "; ".join(dict.fromkeys(why for _, why in skipped))
        print(f"plots.py: {args.archive}: nothing to plot ({reasons})", file=sys.stderr)
        return 1
    print("written:")
    for path in written:
        print(f"  {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
