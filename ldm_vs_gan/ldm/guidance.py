"""Classifier-free guidance and per-image noise: what turns the UNet into a sampler's denoiser.

Classifier-free guidance (Ho & Salimans 2022, Eq. 6): eps~ = eps(x, "") + s (eps(x, c) - eps(x, "")),
with a negative prompt in place of "" when given. Because x0 and v are affine in eps for fixed
(x_t, t) (schedule.py), guiding the x0 estimate is the same as guiding eps, so the guided
denoiser combines x0 estimates. Conditional and unconditional inputs go through the network in
one batched forward (2B), as in the reference implementations.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from ldm_vs_gan.ldm.schedule import NoiseSchedule


def guided_denoiser(
    net: Callable, schedule: NoiseSchedule, target: str, cond: tuple, uncond: tuple | None, scale: float
) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """``denoise(x_t, t) -> x0_hat`` for the samplers.

    net(x, t, context, mask) -> output of type ``target``; cond/uncond: (context (B,L,D), mask (B,L))
    of the prompts and of the negative prompts ("" by default). ``uncond=None`` gives the plain
    conditional denoiser; scale 1 is not special-cased (the batched pass returns the conditional
    estimate up to rounding).
    """
    ctx_c, mask_c = cond
    if uncond is None:

        def denoise(x, t):
            return schedule.to_x0(target, net(x, t, ctx_c, mask_c), x, t)

        return denoise
    ctx_u, mask_u = uncond
    ctx = torch.cat([ctx_u, ctx_c])  # (2B, L, D): [uncond | cond]
    mask = None if mask_c is None else torch.cat([mask_u, mask_c])

    def denoise(x, t):
        x2, t2 = torch.cat([x, x]), torch.cat([t, t])
        out = schedule.to_x0(target, net(x2, t2, ctx, mask), x2, t2)
        x0_u, x0_c = out.chunk(2)
        return x0_u + scale * (x0_c - x0_u)

    return denoise


class PerImageNoise:
    """N(0, I) draws for a batch where image i's draws come from its own generator seeded with
    seeds[i] (int64), so any image can be regenerated alone with the same seed."""

    def __init__(
        self, seeds: list[int] | torch.Tensor, shape: tuple[int, ...], device="cpu", dtype=torch.float32
    ):
        seeds = [int(s) for s in (seeds.tolist() if torch.is_tensor(seeds) else seeds)]
        self.shape, self.device, self.dtype = tuple(shape), device, dtype
        self.gens = []
        for s in seeds:
            g = torch.Generator(device="cpu")
            g.manual_seed(s & 0xFFFF_FFFF_FFFF_FFFF)  # int64 seeds, negative ones included
            self.gens.append(g)

    def __call__(self) -> torch.Tensor:
        # drawn on the CPU (device-independent streams), then moved
        return torch.stack([torch.randn(self.shape, generator=g, dtype=self.dtype) for g in self.gens]).to(
            self.device
        )
