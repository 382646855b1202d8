"""CMMD: maximum mean discrepancy with a Gaussian RBF kernel between CLIP image embeddings.

Jayasumana et al. 2024, "Rethinking FID: Towards a Better Evaluation Metric for Image Generation"
(CVPR), Sec. 4: MMD^2 between the distributions of CLIP embeddings of real and generated images,
kernel k(x, y) = exp(-||x - y||^2 / (2 sigma^2)) with sigma = 10, reported times 1000 so that
values read like FIDs of a few units. No normality assumption (unlike FID).

What is computed follows their reference code (google-research/google-research ``cmmd/``), not
the paper's text: the paper describes the unbiased estimator, the code computes the
minimum-variance ("biased", V-statistic) one of Gretton et al. 2012 ("A Kernel Two-Sample Test",
eq. 5), means over all pairs including i = j:

    CMMD = scale * ( mean_{i,i'} k(x_i, x_i') + mean_{j,j'} k(y_j, y_j') - 2 mean_{i,j} k(x_i, y_j) )

It is >= 0 and exactly 0 for two identical sets; Gretton's Lemma 6 proof shows it is close to the
unbiased one. ``unbiased=True`` gives the U-statistic instead (sums over i != i' and j != j',
divided by N(N-1) and M(M-1)): centred on 0 for equal distributions, so it can be slightly
negative. Their reference embeds with a CLIP whose image embeddings come L2-normalised
(scenic's ``encode_image(normalize=True)``), so embeddings are normalised to unit length here
first: any extractor's raw embeddings then give the same number, and squared distances lie in
[0, 4], the range sigma = 10 was chosen for. Kernel sums run in float64 row blocks, so 10k x 10k
sets never hold the full kernel matrix.
"""

from __future__ import annotations

import numpy as np

from ldm_vs_gan.errors import UserError

CMMD_SIGMA = 10.0  # the reference's _SIGMA
CMMD_SCALE = 1000.0  # the reference's _SCALE
CHUNK_ELEMENTS = 1 << 22  # kernel values held at once (32 MB of float64)


def _unit_embeddings(x, name: str) -> np.ndarray:
    """(N, D) float64 rows scaled to unit length; one-line :class:`UserError` on a bad input."""
    a = np.asarray(x, dtype=np.float64)
    if a.ndim != 2 or len(a) == 0:
        raise UserError(f"{name} must be a non-empty 2-D (samples, dim) array; got shape {a.shape}")
    if not np.isfinite(a).all():
        raise UserError(f"{name} contains NaN or infinite values; the CLIP embedding failed on some input")
    norms = np.linalg.norm(a, axis=1, keepdims=True)
    if (norms == 0).any():
        raise UserError(f"{name} has {int((norms == 0).sum())} all-zero embeddings, which have no direction")
    return a / norms


def _kernel_sum(x: np.ndarray, y: np.ndarray, gamma: float) -> float:
    """sum_{i,j} exp(-gamma ||x_i - y_j||^2), in row blocks of CHUNK_ELEMENTS kernel values."""
    rows = max(1, CHUNK_ELEMENTS // len(y))
    y_sq = np.einsum("ij,ij->i", y, y)
    total = 0.0
    for start in range(0, len(x), rows):
        xb = x[start : start + rows]
        sq = np.einsum("ij,ij->i", xb, xb)[:, None] + y_sq[None, :] - 2.0 * (xb @ y.T)
        # rounding can make the squared distance of a point to itself slightly negative
        total += float(np.exp(-gamma * np.maximum(sq, 0.0)).sum())
    return total


def cmmd(
    real_embeddings,
    fake_embeddings,
    sigma: float = CMMD_SIGMA,
    scale: float = CMMD_SCALE,
    *,
    unbiased: bool = False,
) -> float:
    """CMMD of fake (M, D) against real (N, D) CLIP embeddings; lower is better, 0 for equal sets.

    The default is the reference implementation's estimator (see the module docstring)."""
    if not sigma > 0:
        raise UserError(f"cmmd sigma={sigma!r} is not allowed; choose a bandwidth > 0 (10 in the paper)")
    x = _unit_embeddings(real_embeddings, "cmmd real_embeddings")
    y = _unit_embeddings(fake_embeddings, "cmmd fake_embeddings")
    if x.shape[1] != y.shape[1]:
        raise UserError(
            f"cmmd: real and fake embeddings differ in dimension ({x.shape[1]} vs {y.shape[1]}); "
            "embed both with the same CLIP model"
        )
    n, m = len(x), len(y)
    if unbiased and min(n, m) < 2:
        raise UserError(f"unbiased cmmd needs at least 2 real and 2 generated embeddings; got {n} and {m}")
    gamma = 1.0 / (2.0 * sigma**2)
    kxx, kyy, kxy = _kernel_sum(x, x, gamma), _kernel_sum(y, y, gamma), _kernel_sum(x, y, gamma)
    if unbiased:  # drop the diagonal k(x_i, x_i) = 1 terms (exactly 1 for every point)
        mmd2 = (kxx - n) / (n * (n - 1)) + (kyy - m) / (m * (m - 1)) - 2.0 * kxy / (n * m)
    else:
        mmd2 = kxx / n**2 + kyy / m**2 - 2.0 * kxy / (n * m)
    return float(scale * mmd2)
