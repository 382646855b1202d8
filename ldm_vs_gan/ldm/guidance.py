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

    net(x, t, *cond) -> output of type ``target``; cond/uncond: the conditioning tensors of the
    prompts and of the negative prompts ("" by default), in the network's argument order
    (context (B,L,D), mask (B,L) or None, and pooled (B,E) when the UNet takes it). ``uncond=None``
    gives the plain conditional denoiser; scale 1 is not special-cased (the batched pass returns
    the conditional estimate up to rounding).
    """
    if uncond is None:

        def denoise(x, t):
            return schedule.to_x0(target, net(x, t, *cond), x, t)

        return denoise
    # every conditioning tensor as [uncond | cond] along the batch: (2B, ...)
    both = tuple(None if c is None else torch.cat([u, c]) for u, c in zip(uncond, cond))

    def denoise(x, t):
        x2, t2 = torch.cat([x, x]), torch.cat([t, t])
        out = schedule.to_x0(target, net(x2, t2, *both), x2, t2)
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
