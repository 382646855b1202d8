"""Precision, recall, density and coverage: fidelity and diversity from k-NN balls in feature space.

Each set is taken to cover the union of balls around its points, each ball's radius the distance
to that point's k-th nearest neighbour in its own set (the point itself not counted). With real
features X (N, D), generated features Y (M, D), Euclidean distance d and NND_k that radius:

- precision (Kynkaanniemi et al. 2019, "Improved Precision and Recall Metric for Assessing
  Generative Models", Sec. 2, eqs. 1-2): the share of fakes inside the real manifold,
  (1/M) sum_j 1[exists i: d(X_i, Y_j) < NND_k(X_i)].
- recall (same equations, roles swapped): the share of reals inside the fake manifold,
  (1/N) sum_i 1[exists j: d(X_i, Y_j) < NND_k(Y_j)].
- density (Naeem et al. 2020, "Reliable Fidelity and Diversity Metrics for Generative Models",
  Sec. 3.2): (1/(k M)) sum_j sum_i 1[d(X_i, Y_j) < NND_k(X_i)], how many real balls hold each fake
  over k: about 1 when Y follows X's distribution, not capped at 1; one huge outlier ball among
  the reals lifts it by at most 1/k (precision can jump to 1).
- coverage (Naeem et al. 2020, Sec. 3.2): (1/N) sum_i 1[exists j: d(X_i, Y_j) < NND_k(X_i)], the
  share of real balls holding at least one fake; built on real balls only, so fake outliers
  cannot inflate it (recall's fake balls can).

The definitions are those of the reference ``prdc`` package (clovaai/generative-evaluation-prdc):
strict ``<`` against the radius (Kynkaanniemi's paper writes <=; they differ only on exact ties),
the radius is the (k+1)-th smallest distance of a point to its own set, itself included at 0,
and density divides by k*M. Distances are exact (no approximate neighbour search), computed in
float64 in row blocks so that 10k x 10k sets need tens of MB, not the 800 MB of a full matrix.
"""

from __future__ import annotations

import numpy as np

from ldm_vs_gan.errors import UserError

CHUNK_ELEMENTS = 1 << 22  # distances held at once (32 MB of float64); tests shrink it to force blocks


def _as_features(x, name: str) -> np.ndarray:
    """(N, D) finite float64, or a one-line :class:`UserError` naming ``name`` and the problem."""
    a = np.asarray(x, dtype=np.float64)
    if a.ndim != 2:
        raise UserError(f"{name} must be a 2-D (samples, features) array; got shape {a.shape}")
    if not np.isfinite(a).all():
        raise UserError(f"{name} contains NaN or infinite values; the feature extractor failed on some input")
    return a


def _distance_blocks(x: np.ndarray, y: np.ndarray):
    """Yield (row slice, exact Euclidean distances x[rows] to all of y) in blocks of CHUNK_ELEMENTS."""
    rows = max(1, CHUNK_ELEMENTS // max(1, len(y)))
    y_sq = np.einsum("ij,ij->i", y, y)
    for start in range(0, len(x), rows):
        xb = x[start : start + rows]
        sq = np.einsum("ij,ij->i", xb, xb)[:, None] + y_sq[None, :] - 2.0 * (xb @ y.T)
        # |x|^2 + |y|^2 - 2xy can dip just below 0 for (near-)identical points through rounding
        yield slice(start, start + len(xb)), np.sqrt(np.maximum(sq, 0.0))


def knn_radii(features: np.ndarray, k: int) -> np.ndarray:
    """Distance of each row to its k-th nearest neighbour among the other rows (float64, (N,))."""
    out = np.empty(len(features))
    for rows, d in _distance_blocks(features, features):
        # index k of the partition is the (k+1)-th smallest: the point itself sits at 0 in front
        out[rows] = np.partition(d, k, axis=1)[:, k]
    return out


def prdc(real_features, fake_features, k: int = 5) -> dict[str, float]:
    """{'precision', 'recall', 'density', 'coverage'} of fakes (M, D) against reals (N, D).

    Precision, recall and coverage lie in [0, 1]; density in [0, N/k]. All four are 1 (density
    about 1) for two identical sets and 0 for two sets farther apart than any ball's radius."""
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise UserError(f"prdc k={k!r} is not allowed; choose an integer >= 1 (5 is the papers' default)")
    real = _as_features(real_features, "prdc real_features")
    fake = _as_features(fake_features, "prdc fake_features")
    if real.shape[1] != fake.shape[1]:
        raise UserError(
            f"prdc: real and fake features differ in dimension ({real.shape[1]} vs {fake.shape[1]}); "
            "extract both with the same feature extractor"
        )
    if min(len(real), len(fake)) < k + 1:
        raise UserError(
            f"prdc with k={k} needs at least {k + 1} real and generated samples; "
            f"got real={len(real)} fake={len(fake)}: raise --num-samples or lower k"
        )
    real_r, fake_r = knn_radii(real, k), knn_radii(fake, k)
    fake_in_real = np.zeros(len(fake), dtype=bool)  # precision: fake j inside some real ball
    balls_per_fake = np.zeros(len(fake), dtype=np.int64)  # density: how many real balls hold fake j
    real_in_fake = np.zeros(len(real), dtype=bool)  # recall: real i inside some fake ball
    real_covered = np.zeros(len(real), dtype=bool)  # coverage: real ball i holds some fake
    for rows, d in _distance_blocks(real, fake):
        inside_real = d < real_r[rows, None]  # (block of reals, M): fake j in real ball i
        fake_in_real |= inside_real.any(axis=0)
        balls_per_fake += inside_real.sum(axis=0)
        real_covered[rows] = inside_real.any(axis=1)
        real_in_fake[rows] = (d < fake_r[None, :]).any(axis=1)
    return {
        "precision": float(fake_in_real.mean()),
        "recall": float(real_in_fake.mean()),
        "density": float(balls_per_fake.sum() / (k * len(fake))),
        "coverage": float(real_covered.mean()),
    }
