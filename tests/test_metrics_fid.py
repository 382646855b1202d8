"""FID/KID/IS through our torchmetrics path agree with direct NumPy/SciPy computations."""

import numpy as np
import pytest
import torch
from scipy import linalg

from ldm_vs_gan.metrics.fid import (
    fid_from_features,
    fid_from_stats,
    inception_score_from_logits,
    kid_from_features,
)


def scipy_fid(a, b):
    """pytorch-fid's formula, written out independently of the package."""
    mu1, mu2 = a.mean(0), b.mean(0)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean = linalg.sqrtm(s1 @ s2).real
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


def test_fid_on_random_features_matches_scipy():
    rng = np.random.default_rng(0)
    real = rng.normal(size=(400, 16))
    fake = rng.normal(loc=0.3, scale=1.2, size=(300, 16)) @ rng.normal(size=(16, 16)) * 0.5
    ours, ref = fid_from_features(real, fake), scipy_fid(real, fake)
    assert ref > 1.0
    assert ours == pytest.approx(ref, rel=1e-6, abs=1e-6)


def test_fid_from_cached_sums_equals_fid_from_features():
    rng = np.random.default_rng(1)
    real, fake = rng.normal(size=(200, 8)), rng.normal(size=(150, 8)) + 0.5
    r = torch.as_tensor(real)
    assert fid_from_stats(r.sum(0), r.T @ r, len(r), fake) == pytest.approx(
        fid_from_features(real, fake), rel=1e-9
    )


def test_fid_of_a_set_against_itself_is_about_zero():
    x = np.random.default_rng(2).normal(size=(500, 32))
    assert abs(fid_from_features(x, x)) < 1e-6


def test_kid_near_zero_for_same_distribution_and_positive_for_shifted_set():
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(120, 8)), rng.normal(size=(150, 8))
    same, std, size = kid_from_features(x, y, subsets=10, subset_size=1000)
    assert size == 60  # fewer samples than subset_size: half the smaller set, so subsets differ
    assert std > 0  # a spread over different subsets, not one subset repeated
    shifted, _, _ = kid_from_features(x, y + 1.0, subsets=10)
    assert abs(same) < 0.1 and shifted > 1.0
    _, _, full = kid_from_features(rng.normal(size=(2000, 8)), rng.normal(size=(2100, 8)), subsets=2)
    assert full == 1000  # enough samples: the standard subset size


def test_kid_with_too_few_samples_is_refused_in_one_line():
    from ldm_vs_gan.errors import UserError

    rng = np.random.default_rng(4)
    with pytest.raises(UserError, match=r"KID needs at least 20 .*real=19 fake=300.*--num-samples"):
        kid_from_features(rng.normal(size=(19, 8)), rng.normal(size=(300, 8)))


def test_inception_score_bounds():
    n, c = 200, 10
    confident = torch.full((n, c), -20.0)
    confident[torch.arange(n), torch.arange(n) % c] = 20.0  # one sure class per image, classes balanced
    mean, _ = inception_score_from_logits(confident, splits=1)
    assert mean == pytest.approx(c, rel=1e-3)  # IS = number of classes at best
    flat, _ = inception_score_from_logits(torch.zeros(n, c), splits=2)
    assert flat == pytest.approx(1.0, abs=1e-6)  # uninformative classifier: IS = 1
