"""CMMD against explicit double loops, a closed form, and its expected behaviour."""

import math

import numpy as np
import pytest

from ldm_vs_gan.errors import UserError
from ldm_vs_gan.metrics import cmmd as cmmd_mod
from ldm_vs_gan.metrics.cmmd import cmmd


def loop_cmmd(x, y, sigma=10.0, scale=1000.0, unbiased=False):
    """The reference's estimator (or the U-statistic) with normalisation and kernel written out."""
    x = [np.asarray(v, float) / math.sqrt(sum(c * c for c in v)) for v in x]
    y = [np.asarray(v, float) / math.sqrt(sum(c * c for c in v)) for v in y]

    def k(a, b):
        return math.exp(-sum((a - b) ** 2) / (2 * sigma**2))

    def mean_within(s):
        pairs = [(i, j) for i in range(len(s)) for j in range(len(s)) if not (unbiased and i == j)]
        return sum(k(s[i], s[j]) for i, j in pairs) / len(pairs)

    kxy = sum(k(a, b) for a in x for b in y) / (len(x) * len(y))
    return scale * (mean_within(x) + mean_within(y) - 2 * kxy)


def test_hand_computed_tiny_sets_match_a_double_loop():
    x = np.array([[1.0, 2.0], [-0.5, 1.0], [3.0, -1.0]])  # 3 embeddings of dim 2
    y = np.array([[0.0, 1.0], [2.0, 2.0], [-1.0, -1.0]])
    assert cmmd(x, y) == pytest.approx(loop_cmmd(x, y), rel=1e-10)
    assert cmmd(x, y, unbiased=True) == pytest.approx(loop_cmmd(x, y, unbiased=True), rel=1e-10)
    assert cmmd(x, y[:2], sigma=0.7, scale=1.0) == pytest.approx(loop_cmmd(x, y[:2], 0.7, 1.0), rel=1e-10)


def test_closed_form_for_two_orthogonal_points():
    # unit vectors at squared distance 2: k(x,y) = exp(-2 / (2*10^2)), k(x,x) = k(y,y) = 1
    assert cmmd([[1.0, 0.0]], [[0.0, 1.0]]) == pytest.approx(1000 * (2 - 2 * math.exp(-0.01)), rel=1e-12)


def test_identical_sets_are_zero():
    x = np.random.default_rng(0).normal(size=(200, 32))
    assert abs(cmmd(x, x.copy())) < 1e-9  # the reference's estimator: exactly 0 up to rounding
    # the U-statistic drops k(x_i,x_i)=1 from the within-set means but not k(x_i,y_i)=1 from the
    # cross mean, so it sits a little below 0 for identical sets: -2 scale (1 - mean_off) / (n-1)
    u = cmmd(x, x.copy(), unbiased=True)
    assert -1.0 < u < 0


def test_same_distribution_small_and_shifted_set_clearly_positive():
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(300, 16)), rng.normal(size=(300, 16))
    shift = np.zeros(16)
    shift[0] = 3.0
    same, shifted = cmmd(x, y), cmmd(x, y + shift)
    assert 0 < same < 0.2  # only sampling noise (biased estimator is >= 0)
    assert shifted > 1.0 and shifted > 20 * same
    assert abs(cmmd(x, y, unbiased=True)) < 0.05  # the U-statistic is centred on 0 for equal laws
    assert cmmd(x, y + shift, unbiased=True) == pytest.approx(shifted, rel=0.1)


def test_embeddings_are_normalised_so_their_scale_does_not_matter():
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(50, 8)), rng.normal(size=(60, 8)) + 0.5
    ref = cmmd(x, y)
    per_row = rng.uniform(0.1, 10.0, size=(60, 1))  # each embedding its own length
    assert cmmd(3.0 * x, y * per_row) == pytest.approx(ref, rel=1e-9)
    assert cmmd(x.astype(np.float32), y.tolist()) == pytest.approx(ref, rel=1e-5)


def test_row_blocks_give_the_same_number(monkeypatch):
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(41, 6)), rng.normal(size=(37, 6)) + 0.3
    whole = cmmd(x, y)
    monkeypatch.setattr(cmmd_mod, "CHUNK_ELEMENTS", 5 * 37)
    assert cmmd(x, y) == pytest.approx(whole, rel=1e-12)
    monkeypatch.setattr(cmmd_mod, "CHUNK_ELEMENTS", 1)
    assert cmmd(x, y) == pytest.approx(whole, rel=1e-12)


@pytest.mark.parametrize(
    "x, y, kwargs, message",
    [
        (np.ones(4), np.ones((4, 2)), {}, r"real_embeddings must be a non-empty 2-D .*shape \(4,\)"),
        (np.ones((4, 2)), np.ones((0, 2)), {}, r"fake_embeddings must be a non-empty 2-D"),
        (np.ones((4, 2)), np.ones((4, 3)), {}, r"differ in dimension \(2 vs 3\)"),
        (np.ones((4, 2)), np.zeros((4, 2)), {}, r"fake_embeddings has 4 all-zero embeddings"),
        (np.full((4, 2), np.inf), np.ones((4, 2)), {}, r"real_embeddings contains NaN or infinite"),
        (np.ones((4, 2)), np.ones((4, 2)), {"sigma": 0.0}, r"sigma=0.0 is not allowed"),
        (np.ones((1, 2)), np.ones((4, 2)), {"unbiased": True}, r"at least 2 .*got 1 and 4"),
    ],
)
def test_bad_inputs_are_one_line_user_errors(x, y, kwargs, message):
    with pytest.raises(UserError, match=message) as e:
        cmmd(x, y, **kwargs)
    assert "\n" not in str(e.value)
