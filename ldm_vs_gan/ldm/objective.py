"""The training objective of the denoiser: which noise levels, which target, which loss, which weights.

loss = E_{t, eps} [ w(t) * d(net(x_t, t, text), target) ] with
- t ~ uniform on {0..T-1} (DDPM Algorithm 1), or ``skewed``: t = floor(T * u^p), u ~ U(0,1), p > 1,
  which puts more samples at low noise (the 2023 thesis: "noise level in [0,1] skewed toward 0");
- target ``eps`` | ``v`` | ``x0`` (schedule.py), d = MSE or L1, averaged per sample;
- min-SNR-gamma weighting (Hang et al. 2023, Eq. 9-10 and Sec. 3.4): the x0-space weight
  min(SNR, gamma), expressed for the chosen target: eps -> min(SNR,g)/SNR, v -> min(SNR,g)/(SNR+1),
  x0 -> min(SNR, g);
- offset noise (Guttenberg 2023, "Diffusion with offset noise"): eps += c * n, n ~ N(0,1) per
  (sample, channel), so the model can change the mean brightness of an image.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ldm_vs_gan.errors import bad_value, require
from ldm_vs_gan.ldm.schedule import TARGETS, NoiseSchedule

LOSSES = ("mse", "l1")
T_SAMPLING = ("uniform", "skewed")


@dataclass
class ObjectiveConfig:
    target: str = "eps"  # eps | v | x0
    loss: str = "mse"  # mse | l1
    min_snr_gamma: float | None = None  # e.g. 5.0; None = unweighted
    offset_noise: float = 0.0  # 0 = off; SD fine-tunes use ~0.1
    t_sampling: str = "uniform"  # uniform | skewed
    t_skew_power: float = 2.0  # p in t = T u^p (skewed only); larger = more low-noise steps

    def validate(self, schedule: NoiseSchedule) -> None:
        if self.target not in TARGETS:
            raise bad_value("model.diffusion.target", self.target, TARGETS)
        if self.loss not in LOSSES:
            raise bad_value("model.diffusion.loss", self.loss, LOSSES)
        if self.t_sampling not in T_SAMPLING:
            raise bad_value("model.diffusion.t_sampling", self.t_sampling, T_SAMPLING)
        require(self.t_skew_power > 0, f"model.diffusion.t_skew_power={self.t_skew_power} must be > 0")
        require(
            self.min_snr_gamma is None or self.min_snr_gamma > 0,
            f"model.diffusion.min_snr_gamma={self.min_snr_gamma} must be > 0 or null",
        )
        require(
            not (schedule.zero_terminal_snr and self.target == "eps"),
            "model.diffusion.zero_terminal_snr=true needs model.diffusion.target=v or x0 "
            "(eps cannot be turned into x0 at zero SNR; Lin et al. 2024, Sec. 3.2)",
        )


def sample_timesteps(cfg: ObjectiveConfig, T: int, n: int, generator=None, device=None) -> torch.Tensor:
    """(n,) int64 timesteps in [0, T)."""
    if cfg.t_sampling == "uniform":
        return torch.randint(0, T, (n,), generator=generator, device=device)
    u = torch.rand(n, generator=generator, device=device)
    return (T * u**cfg.t_skew_power).long().clamp(max=T - 1)


def loss_weights(cfg: ObjectiveConfig, schedule: NoiseSchedule, t: torch.Tensor) -> torch.Tensor | None:
    if cfg.min_snr_gamma is None:
        return None
    snr = schedule.snr(t).double()
    clipped = snr.clamp(max=cfg.min_snr_gamma)
    if cfg.target == "eps":
        w = clipped / snr
    elif cfg.target == "v":
        w = clipped / (snr + 1)
    else:
        w = clipped
    return w.float()


def diffusion_loss(
    net,
    x0: torch.Tensor,
    cond: dict,
    schedule: NoiseSchedule,
    cfg: ObjectiveConfig,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """One Monte-Carlo estimate of the objective. x0: clean latents (B,C,h,w); cond: keyword
    arguments of ``net`` besides (x_t, t) (e.g. context, mask). Returns (loss, logged scalars)."""
    b = x0.shape[0]
    t = sample_timesteps(cfg, schedule.T, b, generator, x0.device)
    eps = torch.randn(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype)
    if cfg.offset_noise:
        eps = eps + cfg.offset_noise * torch.randn(
            b, x0.shape[1], 1, 1, generator=generator, device=x0.device, dtype=x0.dtype
        )
    x_t = schedule.add_noise(x0, eps, t)
    target = schedule.target(cfg.target, x0, eps, t)
    out = net(x_t, t, **cond)
    diff = out.float() - target.float()
    per = (diff.square() if cfg.loss == "mse" else diff.abs()).flatten(1).mean(1)  # (B,)
    w = loss_weights(cfg, schedule, t)
    loss = (per * w.to(per.device)).mean() if w is not None else per.mean()
    return loss, {"loss_unweighted": per.mean().detach(), "t_mean": t.float().mean()}
