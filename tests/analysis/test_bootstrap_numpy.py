"""metrics/bootstrap.hpp (through tests/metrics/bootstrap_reference) against analysis/bootstrap.py (numpy):
the same resample indices and the same interval, bit for bit for mean differences (perplexity differences
within 1e-12: exp may differ by an ulp between libm and numpy)."""
import subprocess
import sys
from pathlib import Path

import numpy as np

reference, source = sys.argv[1], Path(sys.argv[2])
sys.path.insert(0, str(source / "analysis"))
from bootstrap import bootstrap_indices, paired_bootstrap, splitmix64  # noqa: E402

# Vigna's splitmix64.c seeded with 1234567.
assert [int(x) for x in splitmix64(1234567, [1, 2, 3])] == [6457827717110365317, 3203168211198807973,
                                                           9817491932198370423]

rng = np.random.default_rng(5)
cases = [
    ("mean_difference", 2000, 1, rng.integers(0, 33, 24).astype(float), rng.integers(0, 33, 24).astype(float)),
    ("mean_difference", 2000, 42, rng.exponential(0.01, 700), rng.exponential(0.02, 700)),
    ("mean_difference", 37, 2**63 + 5, rng.normal(size=5), rng.normal(size=5)),
    ("perplexity_difference", 500, 9, rng.exponential(3.0, 300), rng.exponential(3.1, 300)),
]
for statistic, resamples, seed, a, b in cases:
    text = f"{statistic} {resamples} {seed} {len(a)}\n" + " ".join(repr(float(x)) for x in np.concatenate([a, b]))
    out = subprocess.run([reference], input=text, capture_output=True, text=True, check=True).stdout.split("\n")
    cpp = [float(x) for x in out[0].split()]
    idx = bootstrap_indices(seed, resamples, len(a))
    assert [int(x) for x in out[1].split()] == idx[0].tolist(), f"{statistic} seed {seed}: resample 0 indices"
    assert [int(x) for x in out[2].split()] == idx[-1].tolist(), f"{statistic} seed {seed}: last resample indices"
    py = paired_bootstrap(a, b, statistic, resamples, seed)
    for what, x, y in zip(("estimate", "lower", "upper"), cpp, py):
        ok = x == y if statistic == "mean_difference" else abs(x - y) <= 1e-12 * max(1.0, abs(y))
        assert ok, f"{statistic} seed {seed} n {len(a)}: {what} C++ {x!r} numpy {y!r}"
    print(f"{statistic:22s} B={resamples:5d} seed={seed} n={len(a):4d}: {py[0]:+.6g} [{py[1]:+.6g}, {py[2]:+.6g}] identical")
print("PASS")
