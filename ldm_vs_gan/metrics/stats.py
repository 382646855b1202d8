"""Uncertainty of metric values: bootstrap intervals and a permutation test, all seeded.

Two sources of spread, two intervals; neither covers the other:

- :func:`bootstrap_ci` covers **seed variation**: ``values`` are one metric from independent runs
  (training seeds, or generation seeds of one model), and the interval is for the mean over such
  runs. Percentile bootstrap (Efron & Tibshirani 1993, "An Introduction to the Bootstrap",
  ch. 13): resample the values with replacement, take the alpha/2 and 1 - alpha/2 quantiles of
  the resampled means. With 3-5 seeds it tends to be narrower than the truth (a bootstrap cannot invent
  spread it never saw); read it as a description of the runs at hand, not as a guarantee.
- :func:`bootstrap_metric_ci` covers **sample-set variation**: one model, one real set, and the
  question how much the number moves because only M images were generated. It resamples the
  generated features with replacement (the real side stays fixed, as cached real statistics do)
  and recomputes the metric. It says nothing about another training run.

:func:`permutation_test` asks whether two groups of per-seed values (model A's seeds vs model
B's) differ in mean. A permutation test (Fisher's randomisation test; Good 2005, "Permutation,
Parametric and Bootstrap Tests of Hypotheses") needs no normality, which 3 seeds cannot check,
and keeps its level at any group size: under "no difference" every relabelling of the pooled
values is equally likely. Two-sided, statistic |mean(a) - mean(b)|. With few relabellings (3 vs 3
seeds: C(6, 3) = 20) all are enumerated and p is exact; for equal groups its smallest value is
2/C (the observed split and its mirror), 0.1 for 3 vs 3, which can never reach p < 0.05. Else ``n_perm``
random relabellings give p = (1 + #{|stat| >= observed}) / (1 + n_perm) (Phipson & Smyth 2010),
which never reports 0.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Mapping

import numpy as np

from ldm_vs_gan.errors import UserError

CHUNK_ELEMENTS = 1 << 22  # resampled indices held at once (32 MB of int64)


def _values(x, name: str) -> np.ndarray:
    """A non-empty finite 1-D float64 array, or a one-line :class:`UserError`."""
    a = np.asarray(x, dtype=np.float64)
    if a.ndim != 1 or len(a) == 0:
        raise UserError(f"{name} must be a non-empty 1-D list of numbers; got shape {a.shape}")
    if not np.isfinite(a).all():
        raise UserError(f"{name} contains NaN or infinite values: {a.tolist()}")
    return a


def _check(n: int, n_name: str, alpha: float | None = None) -> None:
    """A count >= 1 and, when given, alpha in (0, 1); else a one-line :class:`UserError`."""
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise UserError(f"{n_name}={n!r} is not allowed; choose an integer >= 1")
    if alpha is not None and not 0 < alpha < 1:
        raise UserError(f"alpha={alpha!r} is not allowed; choose a number in (0, 1), e.g. 0.05 for 95%")


def bootstrap_ci(
    values, n_boot: int = 10000, alpha: float = 0.05, seed: int = 0
) -> tuple[float, float, float]:
    """(mean, low, high): the mean of ``values`` and its percentile-bootstrap 1 - alpha interval."""
    v = _values(values, "bootstrap_ci values")
    _check(n_boot, "bootstrap_ci n_boot", alpha)
    rng = np.random.default_rng(seed)
    rows = max(1, CHUNK_ELEMENTS // len(v))  # many values x many resamples would not fit at once
    blocks = [min(rows, n_boot - s) for s in range(0, n_boot, rows)]
    means = np.concatenate([v[rng.integers(0, len(v), size=(b, len(v)))].mean(1) for b in blocks])
    low, high = np.quantile(means, [alpha / 2, 1 - alpha / 2])
    return float(v.mean()), float(low), float(high)


def permutation_test(a, b, n_perm: int = 10000, seed: int = 0) -> float:
    """Two-sided p-value for mean(a) != mean(b); exact when C(len(a)+len(b), len(a)) <= n_perm."""
    x, y = _values(a, "permutation_test a"), _values(b, "permutation_test b")
    _check(n_perm, "permutation_test n_perm")
    pooled, na = np.concatenate([x, y]), len(x)
    n, total = len(pooled), pooled.sum()

    def stats(idx: np.ndarray) -> np.ndarray:  # |mean(group a) - mean(rest)| for rows of a-indices
        s = pooled[idx].sum(1)
        return np.abs(s / na - (total - s) / (n - na))

    observed = stats(np.arange(na)[None, :])[0]
    # mirrored splits give the same |difference| up to rounding: do not let that decide a tie
    tol = 1e-10 * float(np.abs(pooled).max())
    rows, hits, splits = max(1, CHUNK_ELEMENTS // n), 0, math.comb(n, na)
    if splits <= n_perm:  # every relabelling once (the observed one among them), in blocks
        combos = itertools.combinations(range(n), na)
        while block := list(itertools.islice(combos, rows)):
            hits += int((stats(np.array(block, dtype=np.int64)) >= observed - tol).sum())
        return hits / splits
    rng = np.random.default_rng(seed)
    for s in range(0, n_perm, rows):
        idx = rng.random((min(rows, n_perm - s), n)).argsort(1)[:, :na]  # uniform random subsets
        hits += int((stats(idx) >= observed - tol).sum())
    return (1 + hits) / (1 + n_perm)


def bootstrap_metric_ci(
    real,
    fake,
    metric_fn: Callable,
    n_boot: int = 200,
    seed: int = 0,
    alpha: float = 0.05,
):
    """(point, low, high) of ``metric_fn(real, fake)`` over resampled generated sets.

    ``fake`` (M, ...) rows are drawn M at a time with replacement, ``real`` is passed unchanged.
    A ``metric_fn`` returning a dict of numbers (e.g. :func:`~ldm_vs_gan.metrics.prdc.prdc`)
    gives a dict of such triples, one per key, from the same resamples. Caveats: resampling
    repeats images, which biases set metrics (FID rises; the fakes' k-NN radii shrink and fewer
    distinct fakes remain, so recall and coverage fall), so ``point`` may lie outside [low, high]:
    the width is the useful part. Cost: ``n_boot + 1`` calls of ``metric_fn``."""
    _check(n_boot, "bootstrap_metric_ci n_boot", alpha)
    fake_a = np.asarray(fake)
    if fake_a.ndim < 1 or len(fake_a) < 2:
        raise UserError(f"bootstrap_metric_ci needs at least 2 generated samples; got shape {fake_a.shape}")
    point = metric_fn(real, fake_a)
    rng = np.random.default_rng(seed)
    boots = [metric_fn(real, fake_a[rng.integers(0, len(fake_a), size=len(fake_a))]) for _ in range(n_boot)]

    def triple(p, samples) -> tuple[float, float, float]:
        low, high = np.quantile(np.asarray(samples, dtype=np.float64), [alpha / 2, 1 - alpha / 2])
        return float(p), float(low), float(high)

    if isinstance(point, Mapping):
        return {key: triple(point[key], [b[key] for b in boots]) for key in point}
    return triple(point, boots)
