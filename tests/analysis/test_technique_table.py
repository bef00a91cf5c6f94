"""analysis/technique_table.py's Spearman correlation: the textbook 1 − 6Σd²/(n(n²−1)) without ties, average ranks
with ties, ±1 for monotone data (numpy only, < 1 s)."""
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(sys.argv[1]) / "analysis"))
from technique_table import ranks, spearman  # noqa: E402

assert list(ranks([3.0, 1.0, 2.0, 2.0])) == [4.0, 1.0, 2.5, 2.5]
rng = np.random.default_rng(7)
for _ in range(20):
    a, b = rng.permutation(11).astype(float), rng.permutation(11).astype(float)
    d = ranks(a) - ranks(b)
    textbook = 1.0 - 6.0 * float((d * d).sum()) / (11 * (11 * 11 - 1))
    assert abs(spearman(a, b) - textbook) < 1e-12, (spearman(a, b), textbook)
x = rng.random(9)
assert abs(spearman(x, np.exp(x)) - 1.0) < 1e-12 and abs(spearman(x, -x) + 1.0) < 1e-12
print("technique_table spearman: ok")
