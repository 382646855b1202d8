"""Discrete variance-preserving noise schedules and the conversions between prediction targets.

Forward process (Ho et al. 2020, DDPM Eq. 4): x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps,
t = 0..T-1. Schedules of beta_t:

- ``linear``: DDPM Sec. 4, betas = linspace(beta_start, beta_end, T).
- ``scaled_linear``: LDM/SD, betas = linspace(sqrt(beta_start), sqrt(beta_end), T)**2.
- ``cosine``: Nichol & Dhariwal 2021, Eq. 17: abar(t) = cos((t/T + s)/(1 + s) * pi/2)^2, s=0.008,
  betas = 1 - abar(t+1)/abar(t) clipped at 0.999.
- ``zero_terminal_snr``: Lin et al. 2024 ("Common diffusion noise schedules and sample steps are
  flawed"), Algorithm 1: shift and scale sqrt(abar) so that sqrt(abar_{T-1}) = 0 and sqrt(abar_0)
  is unchanged. Needs a ``v`` or ``x0`` target (eps cannot be converted at abar = 0).

These match diffusers' ``DDPMScheduler`` (``tests/test_ldm_schedule.py``). Fractional timesteps
(used by sigma-space samplers) interpolate log(sigma) linearly between the integer steps, where
sigma_t = sqrt((1 - abar_t) / abar_t) (Karras et al. 2022, Table 1, VP).

Prediction targets (Salimans & Ho 2022, Sec. 4 and Appendix D for v):
eps; x0; v = sqrt(abar) eps - sqrt(1 - abar) x0. With a = sqrt(abar), s = sqrt(1 - abar):
x0 = (x_t - s eps)/a,  eps = (x_t - a x0)/s,  x0 = a x_t - s v,  eps = s x_t + a v.
"""

from __future__ import annotations

import math

import torch

from ldm_vs_gan.errors import bad_value

SCHEDULES = ("scaled_linear", "linear", "cosine")
TARGETS = ("eps", "v", "x0")
#: abar used in place of an exact 0 when a sigma is needed (sigma would be infinite); the same
#: value diffusers' sigma-space schedulers use with zero terminal SNR.
MIN_ABAR = 2.0**-24


def make_betas(
    kind: str, steps: int = 1000, beta_start: float = 0.00085, beta_end: float = 0.012
) -> torch.Tensor:
    if kind == "linear":
        return torch.linspace(beta_start, beta_end, steps, dtype=torch.float64)
    if kind == "scaled_linear":
        return torch.linspace(beta_start**0.5, beta_end**0.5, steps, dtype=torch.float64) ** 2
    if kind == "cosine":

        def abar(u):
            return math.cos((u + 0.008) / 1.008 * math.pi / 2) ** 2

        return torch.tensor(
            [min(1 - abar((i + 1) / steps) / abar(i / steps), 0.999) for i in range(steps)],
            dtype=torch.float64,
        )
    raise bad_value("model.diffusion.schedule", kind, SCHEDULES)


def rescale_zero_terminal_snr(betas: torch.Tensor) -> torch.Tensor:
    """Lin et al. 2024, Algorithm 1."""
    abar_sqrt = torch.cumprod(1 - betas, 0).sqrt()
    first, last = abar_sqrt[0].clone(), abar_sqrt[-1].clone()
    abar_sqrt = (abar_sqrt - last) * first / (first - last)
    abar = abar_sqrt**2
    alphas = torch.cat([abar[:1], abar[1:] / abar[:-1]])
    return 1 - alphas


class NoiseSchedule:
    """abar_t for t = 0..T-1 (float64 inside, float32 out), noising and target conversions."""

    def __init__(
        self,
        kind: str = "scaled_linear",
        steps: int = 1000,
        beta_start: float = 0.00085,
        beta_end: float = 0.012,
        zero_terminal_snr: bool = False,
    ):
        betas = make_betas(kind, steps, beta_start, beta_end)
        if zero_terminal_snr:
            betas = rescale_zero_terminal_snr(betas)
        self.kind, self.T, self.zero_terminal_snr = kind, steps, zero_terminal_snr
        self.betas = betas
        self.alphas_cumprod = torch.cumprod(1 - betas, 0)  # float64 (T,)
        # log sigma per integer step, for interpolation; abar clamped so sigma stays finite.
        ab = self.alphas_cumprod.clamp(min=MIN_ABAR)
        self.log_sigmas = 0.5 * torch.log((1 - ab) / ab)

    # -- abar at (fractional) timesteps -------------------------------------------------------
    def abar(self, t: torch.Tensor) -> torch.Tensor:
        """abar_t, float32, same shape as t. Integer t index the table exactly; fractional t
        interpolate log sigma (exact inverse of :meth:`sigma_to_t`)."""
        t = torch.as_tensor(t)
        if not t.is_floating_point():
            return self.alphas_cumprod.to(t.device)[t.long()].float()
        ls = self.log_sigma(t)
        ab = 1 / (1 + torch.exp(2 * ls))
        # keep exact table values at integer t (zero-SNR's exact 0 at T-1 included)
        ti = t.double().round().long().clamp(0, self.T - 1)
        exact = t.double() == ti.double()
        ab = torch.where(exact, self.alphas_cumprod.to(t.device)[ti], ab)
        return ab.float()

    def log_sigma(self, t: torch.Tensor) -> torch.Tensor:
        t = torch.as_tensor(t, dtype=torch.float64).clamp(0, self.T - 1)
        lo = t.floor().long().clamp(max=self.T - 2)
        w = t - lo
        ls = self.log_sigmas.to(t.device)
        return (1 - w) * ls[lo] + w * ls[lo + 1]

    def sigma_to_t(self, sigma: torch.Tensor) -> torch.Tensor:
        """Fractional timestep whose interpolated sigma is ``sigma`` (log sigmas increase with t)."""
        ls = torch.log(torch.as_tensor(sigma, dtype=torch.float64))
        table = self.log_sigmas.to(ls.device)
        ls = ls.clamp(table[0], table[-1])
        hi = torch.searchsorted(table, ls.reshape(-1)).clamp(1, self.T - 1).reshape(ls.shape)
        lo = hi - 1
        w = (ls - table[lo]) / (table[hi] - table[lo])
        return lo.double() + w

    def sigmas(self) -> torch.Tensor:
        """sigma_t for integer t (float64, finite)."""
        return self.log_sigmas.exp()

    # -- forward process and target conversions ----------------------------------------------
    def _coef(self, t, like):
        ab = self.abar(t).to(like.device, like.dtype).reshape(-1, *([1] * (like.ndim - 1)))
        return ab.sqrt(), (1 - ab).sqrt()

    def add_noise(self, x0, eps, t):
        """DDPM Eq. 4: x_t = sqrt(abar) x0 + sqrt(1-abar) eps."""
        a, s = self._coef(t, x0)
        return a * x0 + s * eps

    def velocity(self, x0, eps, t):
        """v = sqrt(abar) eps - sqrt(1-abar) x0 (Salimans & Ho 2022, Sec. 4)."""
        a, s = self._coef(t, x0)
        return a * eps - s * x0

    def target(self, kind: str, x0, eps, t):
        if kind == "eps":
            return eps
        if kind == "x0":
            return x0
        if kind == "v":
            return self.velocity(x0, eps, t)
        raise bad_value("model.diffusion.target", kind, TARGETS)

    def to_x0(self, kind: str, out, x_t, t):
        """The clean-sample estimate implied by a network output of type ``kind``."""
        a, s = self._coef(t, x_t)
        if kind == "x0":
            return out
        if kind == "eps":
            return (x_t - s * out) / a
        if kind == "v":
            return a * x_t - s * out
        raise bad_value("model.diffusion.target", kind, TARGETS)

    def to_eps(self, kind: str, out, x_t, t):
        a, s = self._coef(t, x_t)
        if kind == "eps":
            return out
        if kind == "x0":
            return (x_t - a * out) / s
        if kind == "v":
            return s * x_t + a * out
        raise bad_value("model.diffusion.target", kind, TARGETS)

    def snr(self, t) -> torch.Tensor:
        ab = self.abar(t)
        return ab / (1 - ab)
