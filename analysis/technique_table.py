#!/usr/bin/env python3
"""The technique table of configs/techniques-tiny-trained.yaml (issue 16) from its run archive, and the Spearman
rank correlation of mean KL with the multiple-choice flip rate over its compressed plans.

    /usr/bin/python3 analysis/technique_table.py RUN.h5

Flip rate: flips in either direction / items (summary `mc_flip_rate_sum_total`, choices scored by the sum of
their tokens' log-probs). Spearman: Pearson correlation of the average ranks (ties share their mean rank),
over every complete plan except `base` (whose KL is only the fp16 storage error and which cannot flip).
"""
import sys

import numpy as np

from read_archive import load_archive, summary_table

COLUMNS = [("perplexity", "ppl", "{:10.3f}"), ("kl_mean", "KL mean", "{:10.4f}"),
           ("same_top1_rate", "same-top1", "{:10.4f}"), ("fdt_mean", "FDT", "{:8.2f}"),
           ("mc_accuracy_sum", "MC acc", "{:8.3f}"), ("mc_flip_rate_sum_total", "flip rate", "{:10.4f}"),
           ("seconds", "seconds", "{:8.1f}")]


def ranks(x):
    """Average ranks (1-based) of x, ties sharing their mean rank."""
    x = np.asarray(x, dtype=float)
    order = np.argsort(x, kind="mergesort")
    r = np.empty(len(x))
    i = 0
    while i < len(x):
        j = i
        while j + 1 < len(x) and x[order[j + 1]] == x[order[i]]:
            j += 1
        r[order[i:j + 1]] = (i + j) / 2.0 + 1.0
        i = j + 1
    return r


def spearman(a, b):
    ra, rb = ranks(a), ranks(b)
    ra -= ra.mean()
    rb -= rb.mean()
    return float((ra * rb).sum() / np.sqrt((ra * ra).sum() * (rb * rb).sum()))


def main(path):
    table = summary_table(load_archive(path, logprobs=False))
    names = table["name"]
    order = sorted(range(len(names)), key=lambda i: table.get("order", list(range(len(names))))[i])
    print("{:<16}".format("plan") + "".join(("{:>" + str(len(f.format(0.0))) + "}").format(h) for _, h, f in COLUMNS))
    for i in order:
        row = "{:<16}".format(names[i])
        for key, _, f in COLUMNS:
            v = table.get(key, [float("nan")] * len(names))[i]
            row += f.format(float(v))
        print(row)
    kl = [float(table["kl_mean"][i]) for i in order if names[i] != "base"]
    flips = [float(table["mc_flip_rate_sum_total"][i]) for i in order if names[i] != "base"]
    print("Spearman(KL mean, flip rate) over {} compressed plans: {:.3f}".format(len(kl), spearman(kl, flips)))


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])
