"""Bootstrap intervals and the permutation test: coverage of the mean, exact p-values, seeding."""

import itertools

import numpy as np
import pytest

from ldm_vs_gan.errors import UserError
from ldm_vs_gan.metrics import stats as stats_mod
from ldm_vs_gan.metrics.prdc import prdc
from ldm_vs_gan.metrics.stats import bootstrap_ci, bootstrap_metric_ci, permutation_test


def test_bootstrap_ci_contains_the_mean_and_shrinks_with_more_data():
    rng = np.random.default_rng(0)
    small, large = rng.normal(5.0, 1.0, size=5), rng.normal(5.0, 1.0, size=500)
    m_s, lo_s, hi_s = bootstrap_ci(small, n_boot=2000)
    m_l, lo_l, hi_l = bootstrap_ci(large, n_boot=2000)
    assert m_s == pytest.approx(small.mean()) and m_l == pytest.approx(large.mean())
    assert lo_s <= m_s <= hi_s and lo_l <= m_l <= hi_l
    assert (hi_l - lo_l) < (hi_s - lo_s) / 3  # width ~ 1/sqrt(n): 10x more data, ~10x narrower
    # about 2 * 1.96 * sd / sqrt(n) for a normal sample
    assert hi_l - lo_l == pytest.approx(2 * 1.96 * large.std() / np.sqrt(500), rel=0.15)
    assert lo_l < 5.0 < hi_l


def test_bootstrap_ci_edge_cases_and_seed():
    assert bootstrap_ci([3.0, 3.0, 3.0]) == (3.0, 3.0, 3.0)  # no spread, no interval
    assert bootstrap_ci([7.0]) == (7.0, 7.0, 7.0)
    v = [0.31, 0.35, 0.29, 0.40]
    w = np.random.default_rng(9).normal(size=20)  # 4 values have too few distinct resample means
    assert bootstrap_ci(w, n_boot=500, seed=1) == bootstrap_ci(w, n_boot=500, seed=1)
    assert bootstrap_ci(w, n_boot=500, seed=1) != bootstrap_ci(w, n_boot=500, seed=2)
    m, lo, hi = bootstrap_ci(v, alpha=0.5)
    _, lo95, hi95 = bootstrap_ci(v)
    assert lo95 <= lo <= m <= hi <= hi95  # a 50% interval lies inside the 95% one
    assert min(v) <= lo95 and hi95 <= max(v)  # means of resamples never leave the data's range


def test_bootstrap_ci_blocks_do_not_change_the_result(monkeypatch):
    v = np.random.default_rng(1).normal(size=50)
    whole = bootstrap_ci(v, n_boot=300)
    monkeypatch.setattr(stats_mod, "CHUNK_ELEMENTS", 50 * 7)  # 7 resamples a block
    blocked = bootstrap_ci(v, n_boot=300)
    assert blocked[0] == whole[0]
    assert blocked[1:] == pytest.approx(whole[1:], abs=0.1)  # another draw of the same law


def test_permutation_exact_3_vs_3_separated_groups_gives_the_smallest_p():
    # C(6,3) = 20 splits; only the observed one and its mirror are as extreme: 2/20
    assert permutation_test([1.0, 2.0, 3.0], [10.0, 11.0, 12.0]) == pytest.approx(0.1)
    assert permutation_test([10.0, 11.0, 12.0], [1.0, 2.0, 3.0]) == pytest.approx(0.1)
    # float values whose mirrored split differs in the last bits still tie
    assert permutation_test([0.1, 0.2, 0.3], [0.7, 0.8, 0.9]) == pytest.approx(0.1)


def test_permutation_identical_groups_give_p_one():
    assert permutation_test([1.0, 2.0, 3.0], [1.0, 2.0, 3.0]) == 1.0
    assert permutation_test([5.0, 5.0], [5.0, 5.0, 5.0]) == 1.0


def test_permutation_exact_p_equals_brute_force_over_all_orderings():
    a, b = [0.9, 1.4, 1.1, 2.0], [1.6, 2.2, 1.9]
    pooled = np.array(a + b)
    obs = abs(np.mean(a) - np.mean(b))
    diffs = [
        abs(pooled[list(p[:4])].mean() - pooled[list(p[4:])].mean()) for p in itertools.permutations(range(7))
    ]
    ref = np.mean([d >= obs - 1e-12 for d in diffs])  # 5040 orderings, each split counted 4!3! times
    assert permutation_test(a, b) == pytest.approx(ref, abs=1e-12)
    assert 0.1 < ref < 0.5  # a middling case


def test_permutation_monte_carlo_is_seeded_and_agrees_with_exact():
    rng = np.random.default_rng(2)
    a, b = rng.normal(0.0, 1.0, size=6), rng.normal(0.8, 1.0, size=6)  # C(12,6) = 924 splits
    exact = permutation_test(a, b, n_perm=1000)
    mc = permutation_test(a, b, n_perm=900, seed=5)  # fewer than 924: Monte Carlo
    assert mc == permutation_test(a, b, n_perm=900, seed=5)
    assert mc != permutation_test(a, b, n_perm=900, seed=6)
    assert mc == pytest.approx(exact, abs=0.05)
    # far apart, 10 vs 10 (184756 splits): no random split is as extreme -> 1 / (n_perm + 1)
    assert permutation_test(np.arange(10.0), np.arange(10.0) + 100, n_perm=999) == pytest.approx(1 / 1000)


def test_bootstrap_metric_ci_resamples_the_generated_set_only():
    rng = np.random.default_rng(3)
    real, fake = rng.normal(size=(40, 3)), rng.normal(size=(60, 3)) + 0.5
    seen = []

    def mean_shift(r, f):
        seen.append((r, f.shape))
        return float(np.linalg.norm(np.mean(f, 0) - np.mean(r, 0)))

    point, lo, hi = bootstrap_metric_ci(real, fake, mean_shift, n_boot=100)
    assert point == pytest.approx(mean_shift(real, fake))
    assert lo < point < hi
    assert len(seen) == 1 + 100 + 1
    assert all(r is real and shape == (60, 3) for r, shape in seen)  # real untouched, fake same size
    assert bootstrap_metric_ci(real, fake, mean_shift, n_boot=50, seed=1) == bootstrap_metric_ci(
        real, fake, mean_shift, n_boot=50, seed=1
    )
    # more generated samples, narrower interval
    _, lo2, hi2 = bootstrap_metric_ci(real, rng.normal(size=(2000, 3)) + 0.5, mean_shift, n_boot=100)
    assert hi2 - lo2 < (hi - lo) / 3


def test_bootstrap_metric_ci_with_a_dict_metric():
    rng = np.random.default_rng(4)
    real, fake = rng.normal(size=(80, 4)), rng.normal(size=(80, 4))
    out = bootstrap_metric_ci(real, fake, lambda r, f: prdc(r, f, k=3), n_boot=20)
    assert set(out) == {"precision", "recall", "density", "coverage"}
    point = prdc(real, fake, k=3)
    for key, (p, lo, hi) in out.items():
        assert p == point[key] and lo <= hi


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: bootstrap_ci([]), r"values must be a non-empty 1-D"),
        (lambda: bootstrap_ci([[1.0, 2.0]]), r"values must be a non-empty 1-D .*shape \(1, 2\)"),
        (lambda: bootstrap_ci([1.0, float("nan")]), r"contains NaN"),
        (lambda: bootstrap_ci([1.0, 2.0], n_boot=0), r"n_boot=0 is not allowed"),
        (lambda: bootstrap_ci([1.0, 2.0], alpha=1.5), r"alpha=1.5 is not allowed"),
        (lambda: permutation_test([], [1.0]), r"permutation_test a must be a non-empty"),
        (lambda: permutation_test([1.0], [2.0], n_perm=-1), r"n_perm=-1 is not allowed"),
        (lambda: bootstrap_metric_ci(np.ones((3, 2)), np.ones((1, 2)), lambda r, f: 0.0), r"at least 2"),
    ],
)
def test_bad_inputs_are_one_line_user_errors(call, message):
    with pytest.raises(UserError, match=message) as e:
        call()
    assert "\n" not in str(e.value)
