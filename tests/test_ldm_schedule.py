"""Schedules match diffusers' DDPMScheduler; noising and target conversions are exact inverses."""

import pytest
import torch
from diffusers import DDPMScheduler

from ldm_vs_gan.errors import ConfigError
from ldm_vs_gan.ldm.objective import ObjectiveConfig, diffusion_loss, loss_weights, sample_timesteps
from ldm_vs_gan.ldm.schedule import NoiseSchedule

DIFFUSERS_NAME = {"scaled_linear": "scaled_linear", "linear": "linear", "cosine": "squaredcos_cap_v2"}


@pytest.mark.parametrize("kind", ["scaled_linear", "linear", "cosine"])
@pytest.mark.parametrize("zero_snr", [False, True])
def test_schedule_matches_diffusers(kind, zero_snr):
    ours = NoiseSchedule(kind, 1000, 0.00085, 0.012, zero_terminal_snr=zero_snr)
    ref = DDPMScheduler(
        num_train_timesteps=1000,
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule=DIFFUSERS_NAME[kind],
        rescale_betas_zero_snr=zero_snr,
    )
    # diffusers rescales for zero SNR in float32 (we use float64): allow its rounding there
    tol = dict(rtol=1e-4, atol=1e-6) if zero_snr else dict(rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(ours.betas.float(), ref.betas.float(), **tol)
    torch.testing.assert_close(
        ours.abar(torch.arange(1000)), ref.alphas_cumprod.float(), rtol=1e-5, atol=1e-7
    )
    if zero_snr:
        assert ours.alphas_cumprod[-1] == 0
    else:
        assert ours.alphas_cumprod[-1] > 0


def test_add_noise_matches_diffusers():
    ours = NoiseSchedule("scaled_linear")
    ref = DDPMScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012)
    x0, eps = torch.randn(6, 4, 8, 8), torch.randn(6, 4, 8, 8)
    t = torch.tensor([0, 1, 10, 500, 998, 999])
    torch.testing.assert_close(ours.add_noise(x0, eps, t), ref.add_noise(x0, eps, t), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(ours.velocity(x0, eps, t), ref.get_velocity(x0, eps, t), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("target", ["eps", "v", "x0"])
def test_target_conversions_are_exact_inverses(target):
    s = NoiseSchedule("scaled_linear")
    x0, eps = torch.randn(5, 4, 8, 8, dtype=torch.float64), torch.randn(5, 4, 8, 8, dtype=torch.float64)
    t = torch.tensor([0, 3, 250, 700, 999])
    x_t = s.add_noise(x0, eps, t)
    out = s.target(target, x0, eps, t)
    torch.testing.assert_close(s.to_x0(target, out, x_t, t), x0, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(s.to_eps(target, out, x_t, t), eps, rtol=1e-4, atol=1e-4)


def test_fractional_timesteps_invert_sigma():
    s = NoiseSchedule("scaled_linear")
    t = torch.tensor([0.0, 0.25, 17.5, 500.0, 998.9])
    sig = torch.exp(s.log_sigma(t))
    torch.testing.assert_close(s.sigma_to_t(sig), t.double(), atol=1e-6, rtol=0)
    # integer t as float gives the table value exactly
    assert s.abar(torch.tensor([500.0])).item() == pytest.approx(float(s.alphas_cumprod[500]), rel=1e-6)


def test_skewed_timesteps_favour_low_noise_and_min_snr_weights():
    cfg = ObjectiveConfig(t_sampling="skewed", t_skew_power=3.0)
    t = sample_timesteps(cfg, 1000, 20000, torch.Generator().manual_seed(0))
    assert 0 <= t.min() and t.max() < 1000
    assert (t < 500).float().mean() > 0.75  # P(u^3 < 1/2) = 0.79
    s = NoiseSchedule("scaled_linear")
    tt = torch.tensor([0, 999])
    w = loss_weights(ObjectiveConfig(target="eps", min_snr_gamma=5.0), s, tt)
    snr = s.snr(tt)
    torch.testing.assert_close(w, torch.minimum(snr, torch.tensor(5.0)) / snr)
    assert w[0] < 1 and w[1] == pytest.approx(1.0)  # high SNR is down-weighted, low SNR is not


def test_eps_with_zero_terminal_snr_is_rejected():
    with pytest.raises(ConfigError, match="target"):
        ObjectiveConfig(target="eps").validate(NoiseSchedule(zero_terminal_snr=True))
    with pytest.raises(ConfigError, match="model.diffusion.loss"):
        ObjectiveConfig(loss="huber").validate(NoiseSchedule())


@pytest.mark.parametrize("target,loss", [("eps", "mse"), ("x0", "l1"), ("v", "mse")])
def test_loss_is_zero_for_a_perfect_network(target, loss):
    s = NoiseSchedule("scaled_linear")
    cfg = ObjectiveConfig(target=target, loss=loss, offset_noise=0.1, min_snr_gamma=5.0)
    x0 = torch.randn(4, 4, 8, 8)
    g = torch.Generator().manual_seed(1)
    # replay the objective's draws to build the oracle output
    recorded = {}

    def oracle(x_t, t):
        recorded["t"] = t
        a = s.abar(t).view(-1, 1, 1, 1)
        eps = (x_t - a.sqrt() * x0) / (1 - a).sqrt()
        return s.target(target, x0, eps, t)

    loss_val, logs = diffusion_loss(oracle, x0, {}, s, cfg, g)
    assert loss_val.item() < 1e-4
    wrong, _ = diffusion_loss(
        lambda x, t: torch.zeros_like(x), x0, {}, s, cfg, torch.Generator().manual_seed(1)
    )
    assert wrong.item() > 1e-2
