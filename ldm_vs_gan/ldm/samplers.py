"""Samplers: plain functions over a denoiser, all with one signature.

``sampler(denoise, x_T, schedule, steps, noise) -> x0``

- ``denoise(x_t, t) -> x0_hat``: the (guided) network turned into a clean-sample estimate, called
  with x_t in the variance-preserving space x_t = sqrt(abar_t) x0 + sqrt(1-abar_t) eps and t a
  float tensor (B,) of (possibly fractional) timesteps; every target (eps/v/x0) and classifier-
  free guidance reduce to this (guidance.py), and every sampler is written in terms of it.
- ``x_T``: the initial sample ~ N(0, I) (B, ...); ``noise()``: a fresh N(0, I) tensor like x_T
  (drawn per image from per-image generators, so image i depends only on its own seed).

Step grid: K timesteps "trailing" from T-1 (Lin et al. 2024, Table 2), so the first step always
starts at the last (noisiest) training step; the final step lands on the clean sample.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from ldm_vs_gan.errors import bad_value
from ldm_vs_gan.ldm.schedule import MIN_ABAR, NoiseSchedule

Denoiser = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
Noise = Callable[[], torch.Tensor]


def timestep_grid(T: int, steps: int) -> list[int]:
    """K decreasing integer timesteps, "trailing" spacing: round(T - i T/K) - 1."""
    if steps < 1:
        raise bad_value("sampling.steps", steps, "an integer >= 1")
    steps = min(steps, T)
    return [int(round(T - i * T / steps)) - 1 for i in range(steps)]


def karras_sigmas(sigma_min: float, sigma_max: float, n: int, rho: float = 7.0) -> torch.Tensor:
    """Karras et al. 2022, Eq. 5: sigma_i = (smax^(1/rho) + i/(n-1) (smin^(1/rho) - smax^(1/rho)))^rho."""
    if n == 1:
        return torch.tensor([sigma_max], dtype=torch.float64)
    ramp = torch.linspace(0, 1, n, dtype=torch.float64)
    lo, hi = sigma_min ** (1 / rho), sigma_max ** (1 / rho)
    return (hi + ramp * (lo - hi)) ** rho


def _bcast(v: float, x: torch.Tensor) -> torch.Tensor:
    return torch.full((x.shape[0],), float(v), device=x.device, dtype=torch.float32)


def _abar(schedule: NoiseSchedule, t: int) -> float:
    return 1.0 if t < 0 else float(schedule.alphas_cumprod[t])


def _ddim_like(denoise, x, schedule, steps, noise, eta):
    """Generalised DDIM update (Song et al. 2021, Eq. 12) from t to the next grid step s:
    x_s = sqrt(abar_s) x0 + sqrt(1 - abar_s - sigma^2) eps + sigma z,
    sigma = eta * sqrt((1-abar_s)/(1-abar_t)) * sqrt(1 - abar_t/abar_s) (Eq. 16)."""
    grid = timestep_grid(schedule.T, steps)
    for i, t in enumerate(grid):
        s = grid[i + 1] if i + 1 < len(grid) else -1
        a_t, a_s = _abar(schedule, t), _abar(schedule, s)
        x0 = denoise(x, _bcast(t, x))
        if s < 0:
            return x0
        eps = (x - a_t**0.5 * x0) / (1 - a_t) ** 0.5
        sigma = eta * ((1 - a_s) / (1 - a_t) * (1 - a_t / a_s)) ** 0.5
        x = a_s**0.5 * x0 + max(1 - a_s - sigma**2, 0.0) ** 0.5 * eps
        if sigma > 0:
            x = x + sigma * noise()
    return x


def ddim(
    denoise: Denoiser, x: torch.Tensor, schedule: NoiseSchedule, steps: int, noise: Noise, eta: float = 0.0
) -> torch.Tensor:
    """DDIM (Song, Meng & Ermon 2021, Eq. 12); eta = 0 is the deterministic sampler."""
    return _ddim_like(denoise, x, schedule, steps, noise, eta)


def ddpm(
    denoise: Denoiser, x: torch.Tensor, schedule: NoiseSchedule, steps: int, noise: Noise
) -> torch.Tensor:
    """Ancestral sampling from the DDPM posterior q(x_s | x_t, x0) (Ho et al. 2020, Eq. 6-7; for
    strided steps with beta_ts = 1 - abar_t/abar_s). This is exactly DDIM with eta = 1
    (Song et al. 2021, Sec. 4.1), which is how it is computed."""
    return _ddim_like(denoise, x, schedule, steps, noise, 1.0)


def _sigma_grid(schedule: NoiseSchedule, steps: int, karras: bool) -> torch.Tensor:
    """Decreasing sigmas (float64) ending in 0: the trailing grid's sigmas, or Karras' Eq. 5
    between the schedule's smallest and largest sigma."""
    sig = schedule.sigmas()
    if karras:
        s = karras_sigmas(float(sig[0]), float(sig[-1]), min(steps, schedule.T))
    else:
        s = sig[timestep_grid(schedule.T, steps)]
    return torch.cat([s, s.new_zeros(1)])


def _edm_denoiser(denoise: Denoiser, schedule: NoiseSchedule):
    """Karras et al. 2022 (Table 1, VP): x_edm = x_t / sqrt(abar), sigma = sqrt((1-abar)/abar);
    D(x_edm; sigma) = denoise(x_edm / sqrt(1 + sigma^2), t(sigma))."""

    def D(x, sigma: float):
        t = schedule.sigma_to_t(torch.tensor(sigma, dtype=torch.float64)).float()
        return denoise(x / (1 + sigma**2) ** 0.5, t.expand(x.shape[0]).to(x.device))

    return D


def _edm_start(x: torch.Tensor, sigma_max: float) -> torch.Tensor:
    # x_T ~ N(0, I) in VP space corresponds to x_T * sqrt(1 + sigma_max^2) in EDM space.
    return x * (1 + sigma_max**2) ** 0.5


def euler(
    denoise: Denoiser,
    x: torch.Tensor,
    schedule: NoiseSchedule,
    steps: int,
    noise: Noise,
    karras: bool = False,
) -> torch.Tensor:
    """Euler's method on the probability-flow ODE dx/dsigma = (x - D(x; sigma)) / sigma
    (Karras et al. 2022, Eq. 3 with sigma(t) = t; Algorithm 2 without the 2nd-order correction).
    ``karras``: sigmas from Karras Eq. 5 (rho = 7). Deterministic: ``noise`` is unused."""
    D = _edm_denoiser(denoise, schedule)
    sigmas = _sigma_grid(schedule, steps, karras)
    x = _edm_start(x, float(sigmas[0]))
    for i in range(len(sigmas) - 1):
        s, s_next = float(sigmas[i]), float(sigmas[i + 1])
        x0 = D(x, s)
        if s_next == 0:
            return x0
        x = x + (s_next - s) * (x - x0) / s
    return x


def dpmpp_2m(
    denoise: Denoiser,
    x: torch.Tensor,
    schedule: NoiseSchedule,
    steps: int,
    noise: Noise,
    karras: bool = False,
) -> torch.Tensor:
    """DPM-Solver++(2M) (Lu et al. 2022, "DPM-Solver++", Algorithm 2): multistep second order in
    the data prediction, with lambda = -log sigma, h = lambda_next - lambda:
    x_next = (sigma_next/sigma) x - (e^{-h} - 1) D_i,  D_i = (1 + 1/(2r)) x0_i - 1/(2r) x0_{i-1},
    r = h_{i-1}/h_i; first and last steps are first order (D_i = x0_i). Deterministic."""
    D = _edm_denoiser(denoise, schedule)
    sigmas = _sigma_grid(schedule, steps, karras)
    x = _edm_start(x, float(sigmas[0]))
    old, h_last = None, None
    for i in range(len(sigmas) - 1):
        s, s_next = float(sigmas[i]), float(sigmas[i + 1])
        x0 = D(x, s)
        if s_next == 0:
            return x0
        h = torch.log(torch.tensor(s / s_next)).item()
        d = x0
        if old is not None:
            r = h_last / h
            d = (1 + 1 / (2 * r)) * x0 - (1 / (2 * r)) * old
        x = (s_next / s) * x - torch.expm1(torch.tensor(-h)).item() * d
        old, h_last = x0, h
    return x


SAMPLERS: dict[str, Callable] = {
    "ddpm": ddpm,
    "ddim": ddim,
    "euler": euler,
    "euler_karras": lambda *a, **k: euler(*a, karras=True, **k),
    "dpmpp_2m": dpmpp_2m,
    "dpmpp_2m_karras": lambda *a, **k: dpmpp_2m(*a, karras=True, **k),
}


def get_sampler(name: str) -> Callable:
    if name not in SAMPLERS:
        raise bad_value("sampler", name, SAMPLERS)
    return SAMPLERS[name]


__all__ = [
    "SAMPLERS",
    "get_sampler",
    "ddpm",
    "ddim",
    "euler",
    "dpmpp_2m",
    "timestep_grid",
    "karras_sigmas",
    "MIN_ABAR",
]
