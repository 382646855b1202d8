"""Precision/recall/density/coverage against hand computation and a brute-force reference."""

import numpy as np
import pytest
from scipy.spatial.distance import cdist

from ldm_vs_gan.errors import UserError
from ldm_vs_gan.metrics import prdc as prdc_mod
from ldm_vs_gan.metrics.prdc import knn_radii, prdc


def col(*xs):
    """1-D points as an (N, 1) feature matrix."""
    return np.array(xs, dtype=np.float64)[:, None]


def brute_prdc(real, fake, k):
    """The reference package's definitions written out with cdist and plain loops."""
    rr, ff, rf = cdist(real, real), cdist(fake, fake), cdist(real, fake)
    r_real = np.sort(rr, axis=1)[:, k]  # column 0 is the point itself
    r_fake = np.sort(ff, axis=1)[:, k]
    n, m = len(real), len(fake)
    precision = np.mean([any(rf[i, j] < r_real[i] for i in range(n)) for j in range(m)])
    recall = np.mean([any(rf[i, j] < r_fake[j] for j in range(m)) for i in range(n)])
    density = sum(rf[i, j] < r_real[i] for i in range(n) for j in range(m)) / (k * m)
    coverage = np.mean([rf[i].min() < r_real[i] for i in range(n)])
    return {"precision": precision, "recall": recall, "density": density, "coverage": coverage}


def test_hand_computed_1d_k1():
    real, fake = col(0, 1, 3, 10), col(0.4, 2.2, 20, 21)
    # k=1 radii: real 0->1 (to 1), 1->1 (to 0), 3->2 (to 1), 10->7 (to 3)
    assert knn_radii(real, 1).tolist() == pytest.approx([1, 1, 2, 7])
    # fake radii: 0.4->1.8, 2.2->1.8, 20->1, 21->1
    assert knn_radii(fake, 1).tolist() == pytest.approx([1.8, 1.8, 1, 1])
    out = prdc(real, fake, k=1)
    # precision: 0.4 in ball(0, 1); 2.2 in ball(3, 2); 20 and 21 in no real ball -> 2/4
    assert out["precision"] == pytest.approx(0.5)
    # density: 0.4 in balls of 0 and 1 (2), 2.2 in ball of 3 (1), 20, 21 in none -> 3 / (1*4)
    assert out["density"] == pytest.approx(0.75)
    # coverage: nearest fakes 0.4 (<1), 0.4 (0.6<1), 2.2 (0.8<2) cover 0, 1, 3; 10's is 7.8 >= 7 -> 3/4
    assert out["coverage"] == pytest.approx(0.75)
    # recall: 0, 1 in ball(0.4, 1.8); 3 in ball(2.2, 1.8); 10 in none (7.8 > 1.8, 10 > 1) -> 3/4
    assert out["recall"] == pytest.approx(0.75)


def test_hand_computed_1d_k2_density_divides_by_k():
    real, fake = col(0, 1, 3, 10), col(0.4, 2.2, 20, 21)
    # k=2 radii: real 0->3, 1->2, 3->3, 10->9; fake 0.4->19.6, 2.2->17.8, 20->17.8, 21->18.8
    assert knn_radii(real, 2).tolist() == pytest.approx([3, 2, 3, 9])
    assert knn_radii(fake, 2).tolist() == pytest.approx([19.6, 17.8, 17.8, 18.8])
    out = prdc(real, fake, k=2)
    # 0.4 in balls of 0, 1, 3 (not 10: 9.6 > 9); 2.2 in all four; 20, 21 in none -> (3+4) / (2*4)
    assert out["density"] == pytest.approx(7 / 8)
    assert out["precision"] == pytest.approx(0.5)
    assert out["coverage"] == pytest.approx(1.0)  # 10's nearest fake 2.2 is 7.8 < 9 away
    assert out["recall"] == pytest.approx(1.0)  # every real within 19.6 of 0.4


def test_hand_computed_2d_square():
    # unit square corners as reals, k=1: every radius is 1 (the side)
    real = np.array([[0, 0], [1, 0], [0, 1], [1, 1]], dtype=np.float64)
    # centre (0.707 from every corner), a point next to (0,0), and one far away
    fake = np.array([[0.5, 0.5], [0.1, 0.0], [5.0, 5.0]])
    out = prdc(real, fake, k=1)
    assert out["precision"] == pytest.approx(2 / 3)
    assert out["density"] == pytest.approx((4 + 2) / 3)  # centre in all 4 balls, (0.1,0) in 2 (0.1, 0.9)
    assert out["coverage"] == pytest.approx(1.0)  # every corner holds the centre
    # fake radii: centre and (0.1,0) are sqrt(0.41) = 0.640 apart; far -> centre 6.364. (0,0) lies
    # in (0.1,0)'s ball (0.1), and (1,1) in the far outlier's huge ball (5.657 < 6.364): 2/4
    assert knn_radii(fake, 1) == pytest.approx([0.41**0.5, 0.41**0.5, 4.5 * 2**0.5])
    assert out["recall"] == pytest.approx(2 / 4)


def test_identical_sets_score_one():
    x = np.random.default_rng(0).normal(size=(300, 8))
    for k in (1, 3, 5):
        out = prdc(x, x.copy(), k=k)
        assert out["precision"] == out["recall"] == out["coverage"] == 1.0
        # each real ball holds itself and its k-1 nearer neighbours: k per fake, /k. Only the
        # k-th neighbour (on the sphere) may count by rounding, at most 1/k more.
        assert 1.0 <= out["density"] <= 1.0 + 1.0 / k


def test_far_apart_sets_score_zero():
    rng = np.random.default_rng(1)
    out = prdc(rng.normal(size=(100, 4)), rng.normal(size=(120, 4)) + 100.0, k=5)
    assert out == {"precision": 0.0, "recall": 0.0, "density": 0.0, "coverage": 0.0}


@pytest.mark.parametrize("k", [1, 5, 10])
def test_matches_brute_force_reference_on_random_data(k):
    rng = np.random.default_rng(k)
    real = rng.normal(size=(150, 6))
    fake = rng.normal(loc=0.5, scale=0.9, size=(130, 6))
    ours, ref = prdc(real, fake, k=k), brute_prdc(real, fake, k)
    assert all(0 < ours[key] < 1 for key in ("precision", "recall", "coverage"))  # nothing trivial
    for key in ref:
        assert ours[key] == pytest.approx(ref[key], abs=1e-12), key


def test_row_blocks_give_the_same_numbers(monkeypatch):
    rng = np.random.default_rng(2)
    real, fake = rng.normal(size=(97, 5)), rng.normal(size=(83, 5)) + 0.2
    whole = prdc(real, fake, k=3)
    monkeypatch.setattr(prdc_mod, "CHUNK_ELEMENTS", 7 * 97)  # 7 rows a block, last block short
    assert prdc(real, fake, k=3) == whole
    monkeypatch.setattr(prdc_mod, "CHUNK_ELEMENTS", 1)  # one row a block
    assert prdc(real, fake, k=3) == whole


def test_float32_and_list_inputs_give_float_results():
    rng = np.random.default_rng(3)
    real, fake = rng.normal(size=(40, 3)).astype(np.float32), rng.normal(size=(40, 3))
    out = prdc(real, fake.tolist())
    assert out == prdc(real.astype(np.float64), fake)  # computed in float64 whatever comes in
    assert set(out) == {"precision", "recall", "density", "coverage"}
    assert all(type(v) is float for v in out.values())


@pytest.mark.parametrize(
    "real, fake, k, message",
    [
        (np.zeros(10), np.zeros((10, 2)), 5, r"real_features must be a 2-D .*shape \(10,\)"),
        (np.zeros((10, 2)), np.zeros((10, 3)), 5, r"differ in dimension \(2 vs 3\)"),
        (np.zeros((10, 2)), np.zeros((5, 2)), 5, r"at least 6 .*real=10 fake=5"),
        (np.zeros((10, 2)), np.zeros((10, 2)), 0, r"k=0 is not allowed"),
        (np.zeros((10, 2)), np.zeros((10, 2)), 2.5, r"k=2.5 is not allowed"),
        (np.zeros((10, 2)), np.full((10, 2), np.nan), 5, r"fake_features contains NaN"),
    ],
)
def test_bad_inputs_are_one_line_user_errors(real, fake, k, message):
    with pytest.raises(UserError, match=message) as e:
        prdc(real, fake, k=k)
    assert "\n" not in str(e.value)
