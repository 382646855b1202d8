"""GALIP objectives: MA-GP against a hand computation, the mismatched captions, the hinge terms."""

import pytest
import torch

from ldm_vs_gan.galip.losses import clip_similarity, hinge_fake, hinge_real, ma_gp, mismatched


def _tiny_d(a, b):
    """D(F, e) = (a . F_flat)^2 + b . e: gradients by hand are 2 (a . F) a and b."""

    def d(f, e):
        return (f.flatten(1) @ a) ** 2 + e @ b

    return d


def test_ma_gp_matches_hand_computation():
    torch.manual_seed(0)
    a, b = torch.randn(2 * 3 * 3, dtype=torch.float64), torch.randn(5, dtype=torch.float64)
    d = _tiny_d(a, b)
    f = torch.randn(4, 2, 3, 3, dtype=torch.float64, requires_grad=True)
    e = torch.randn(4, 5, dtype=torch.float64, requires_grad=True)
    got = ma_gp(d(f, e), [f, e], k=2.0, p=6.0)
    s = f.detach().flatten(1) @ a  # (B,)
    norm_sq = (2 * s[:, None] * a[None]).pow(2).sum(1) + b.pow(2).sum()  # joint norm over (F, e)
    want = 2.0 * (norm_sq.sqrt() ** 6).mean()
    torch.testing.assert_close(got.double(), want, rtol=1e-5, atol=0)
    # The penalty is differentiable (create_graph): it trains D's parameters through its gradient.
    ga = torch.autograd.grad(ma_gp(d(f, e), [f, e]), f)[0]
    assert ga.abs().sum() > 0


def test_ma_gp_is_joint_not_separate():
    """One norm over the concatenated gradients, not a sum of two penalties."""
    torch.manual_seed(1)
    a, b = torch.randn(4), torch.randn(3)
    d = _tiny_d(a, b)
    f = torch.randn(2, 4, requires_grad=True)
    e = torch.randn(2, 3, requires_grad=True)
    joint = ma_gp(d(f, e), [f, e], k=1.0, p=6.0)
    separate = ma_gp(d(f, e), [f], k=1.0, p=6.0) + ma_gp(d(f, e), [e], k=1.0, p=6.0)
    assert not torch.allclose(joint, separate)


def test_ma_gp_unscales_the_grad_scaler():
    """With the fp16 GradScaler's scale the outputs are scaled before autograd.grad and the
    gradients divided after: the penalty must not change with the scale."""
    torch.manual_seed(2)
    a, b = torch.randn(6), torch.randn(3)
    d = _tiny_d(a, b)
    f = torch.randn(3, 6, requires_grad=True)
    e = torch.randn(3, 3, requires_grad=True)
    plain = ma_gp(d(f, e), [f, e])
    scaled = ma_gp(d(f, e), [f, e], grad_scale=65536.0)
    torch.testing.assert_close(scaled, plain, rtol=1e-5, atol=0)


def test_ma_gp_zero_gradient_is_finite():
    f = torch.randn(2, 3, requires_grad=True)
    e = torch.randn(2, 3, requires_grad=True)
    w = torch.zeros(3, requires_grad=True)  # a fresh Mate-D can have exactly zero gradients
    gp = ma_gp(f @ w + e @ w, [f, e])
    (gw,) = torch.autograd.grad(gp, w)
    assert gp.item() == 0.0 and torch.isfinite(gw).all()


@pytest.mark.parametrize("n", [2, 3, 8, 64])
def test_mismatched_is_a_derangement(n):
    idx = torch.arange(n)
    rolled = mismatched(idx[:, None].float()).squeeze(1).long()
    assert sorted(rolled.tolist()) == idx.tolist()  # a permutation of the batch
    assert (rolled != idx).all()  # with no fixed point: every image gets another caption


def test_mismatched_needs_two():
    with pytest.raises(ValueError, match="at least 2"):
        mismatched(torch.zeros(1, 4))


def test_hinge_terms_and_similarity():
    logits = torch.tensor([2.0, 0.5, -3.0])
    assert hinge_real(logits).item() == pytest.approx((0 + 0.5 + 4.0) / 3)
    assert hinge_fake(logits).item() == pytest.approx((3.0 + 1.5 + 0) / 3)
    x = torch.randn(4, 8)
    assert clip_similarity(x, 3 * x).item() == pytest.approx(1.0, abs=1e-6)
    assert clip_similarity(x, -x).item() == pytest.approx(-1.0, abs=1e-6)
