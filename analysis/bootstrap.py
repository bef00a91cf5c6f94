"""The paired bootstrap of src/metrics/bootstrap.hpp in numpy, step for step (same seed -> same interval).

    from bootstrap import paired_bootstrap
    estimate, lower, upper = paired_bootstrap(a, b, "mean_difference", resamples=2000, seed=1)

a, b: per-unit arrays of two plans on the same units (per prompt: FDT, SDT; per token: KL, NLL).
"mean_difference": mean(a) - mean(b); "perplexity_difference": exp(mean(a)) - exp(mean(b)) of NLLs.
"""
import numpy as np

_GAMMA, _M1, _M2 = np.uint64(0x9E3779B97F4A7C15), np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)


def splitmix64(seed, k):
    """Draws number k (an array of integers >= 1) of splitmix64 seeded with `seed` (wrapping uint64 arithmetic)."""
    with np.errstate(over="ignore"):
        z = np.uint64(seed) + np.asarray(k, dtype=np.uint64) * _GAMMA
        z = (z ^ (z >> np.uint64(30))) * _M1
        z = (z ^ (z >> np.uint64(27))) * _M2
        return z ^ (z >> np.uint64(31))


def bootstrap_indices(seed, resamples, n):
    """(resamples, n) unit indices: resample b takes draws b*n + 1 .. b*n + n, each modulo n."""
    k = np.arange(1, resamples * n + 1, dtype=np.uint64).reshape(resamples, n)
    return (splitmix64(seed, k) % np.uint64(n)).astype(np.int64)


def _statistic(a, b, statistic):
    # Left-to-right sums along the last axis (cumsum is sequential, unlike np.sum's pairwise summation).
    n = a.shape[-1]
    ma, mb = np.cumsum(a, axis=-1)[..., -1] / n, np.cumsum(b, axis=-1)[..., -1] / n
    if statistic == "mean_difference":
        return ma - mb
    if statistic == "perplexity_difference":
        return np.exp(ma) - np.exp(mb)
    raise ValueError(f"unknown statistic {statistic!r}")


def paired_bootstrap(a, b, statistic="mean_difference", resamples=2000, seed=1):
    """(estimate, lower, upper): the statistic and its 95% percentile interval (numpy.percentile, linear)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    idx = bootstrap_indices(seed, resamples, len(a))
    stats = _statistic(a[idx], b[idx], statistic)
    lower, upper = np.percentile(stats, [2.5, 97.5])
    return float(_statistic(a, b, statistic)), float(lower), float(upper)
