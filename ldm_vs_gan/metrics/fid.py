"""FID, KID and IS through torchmetrics, computed from features.

Images are turned into features once (``features.extract``, uint8 in, any extractor); the numbers
are then computed by torchmetrics' own metric classes, fed through a pass-through "extractor" so
the real-image side can be restored from the on-disk cache instead of recomputed
(``reset_real_features=False`` semantics: the real statistics are fixed, only fakes change).
The features given are complete (a distributed evaluation gathers them first), so the metric
objects never synchronise across ranks (``sync_on_compute=False``): a rank-0-only evaluation
inside training would otherwise wait forever for ranks that are not evaluating.

- FID (Heusel et al. 2017, eq. 6): ||mu_r - mu_f||^2 + Tr(S_r + S_f - 2 (S_r S_f)^{1/2}), from
  torchmetrics' running sums (float64).
- KID (Binkowski et al. 2018): unbiased MMD^2 with the cubic polynomial kernel over random subsets;
  ``subset_size`` must not exceed either set, so it is clipped to min(1000, N_real, N_fake).
- IS (Salimans et al. 2016): exp(E KL(p(y|x) || p(y))) over 10 splits, from Inception logits.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ldm_vs_gan.errors import UserError

try:  # version string for provenance
    import torchmetrics

    TORCHMETRICS_VERSION = torchmetrics.__version__
except Exception:  # pragma: no cover
    TORCHMETRICS_VERSION = "?"


class Passthrough(nn.Module):
    """Lets torchmetrics accept precomputed features: ``num_features`` tells it D without probing."""

    def __init__(self, dim: int):
        super().__init__()
        self.num_features = int(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


def _t(x) -> torch.Tensor:
    return torch.as_tensor(np.asarray(x), dtype=torch.float64)


def fid_from_stats(real_sum, real_cov_sum, real_n: int, fake_features) -> float:
    """FID of ``fake_features`` (N, D) against cached real sums (sum over x, sum over x x^T, count)."""
    from torchmetrics.image.fid import FrechetInceptionDistance

    fake = _t(fake_features)
    m = FrechetInceptionDistance(
        feature=Passthrough(fake.shape[1]), reset_real_features=False, sync_on_compute=False
    )
    m.real_features_sum = _t(real_sum).clone()
    m.real_features_cov_sum = _t(real_cov_sum).clone()
    m.real_features_num_samples = torch.tensor(int(real_n), dtype=torch.long)
    m.update(fake, real=False)
    return float(m.compute())


def fid_from_features(real_features, fake_features) -> float:
    """FID between two feature sets (N, D), through the same code path as the cached statistics."""
    real = _t(real_features)
    return fid_from_stats(real.sum(0), real.T @ real, len(real), fake_features)


KID_MIN_SUBSET = 10  # below this the unbiased MMD estimate of one subset is mostly noise


def kid_from_features(
    real_features, fake_features, subsets: int = 100, subset_size: int = 1000, seed: int = 0
) -> tuple[float, float, int]:
    """(KID mean, KID std, subset_size used). Subsets are drawn with a seeded generator.

    With fewer samples than ``subset_size`` the subsets shrink to half the smaller set, so that
    they differ from one another (a subset as large as the set repeats one number and reports a
    spread of 0); below :data:`KID_MIN_SUBSET` per subset the estimate is refused, not reported."""
    from torchmetrics.image.kid import KernelInceptionDistance

    real, fake = _t(real_features), _t(fake_features)
    smaller = min(len(real), len(fake))
    size = int(subset_size if smaller >= 2 * subset_size else min(subset_size, smaller // 2))
    if size < KID_MIN_SUBSET:
        raise UserError(
            f"KID needs at least {2 * KID_MIN_SUBSET} real and generated samples (subsets of "
            f"{KID_MIN_SUBSET}); got real={len(real)} fake={len(fake)}: raise --num-samples"
        )
    m = KernelInceptionDistance(
        feature=Passthrough(real.shape[1]),
        subsets=subsets,
        subset_size=size,
        reset_real_features=False,
        sync_on_compute=False,
    )
    m.update(real, real=True)
    m.update(fake, real=False)
    with torch.random.fork_rng():  # torchmetrics draws subsets from the global RNG
        torch.manual_seed(seed)
        mean, std = m.compute()
    return float(mean), float(std), size


def inception_score_from_logits(logits, splits: int = 10, seed: int = 0) -> tuple[float, float]:
    """(IS mean, IS std over ``splits``) from Inception ``logits_unbiased`` (N, 1008)."""
    from torchmetrics.image.inception import InceptionScore

    x = _t(logits)
    m = InceptionScore(feature=Passthrough(x.shape[1]), splits=splits, sync_on_compute=False)
    m.update(x)
    with torch.random.fork_rng():  # torchmetrics shuffles with the global RNG before splitting
        torch.manual_seed(seed)
        mean, std = m.compute()
    return float(mean), float(std)
