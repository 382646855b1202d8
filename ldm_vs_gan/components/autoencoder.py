"""The frozen AutoencoderKL (diffusers) that gives the LDM its latent space.

``encode(images[-1,1]) -> scaled latents`` and ``decode(latents) -> images[-1,1]`` with the
scaling of the LDM paper (Rombach et al. 2022, s4.3.2 / appendix G: latents are rescaled by
1/std so the diffusion model sees unit variance; SD v1: 0.18215). diffusers' ``shift_factor``
(SD3/Flux VAEs) is honoured when the model config has one.
"""

from __future__ import annotations

import torch
from torch import nn


class FrozenAutoencoder(nn.Module):
    """A frozen diffusers ``AutoencoderKL``.

    vae: the ``AutoencoderKL``.
    scaling_factor: latents are ``(z - shift) * scaling_factor``; from the model config for
        published VAEs, measured on data for the toy VAE (stored with its run).
    latent: ``mode`` (the posterior mean: deterministic, so runs are a pure function of their
        seed) or ``sample`` (z = mean + std * eps, as the LDM paper trains).
    info: provenance (source, weights hash, ...).
    """

    def __init__(
        self,
        vae: nn.Module,
        *,
        scaling_factor: float | None = None,
        latent: str = "mode",
        info: dict | None = None,
    ):
        super().__init__()
        if latent not in ("mode", "sample"):
            from ldm_vs_gan.errors import bad_value

            raise bad_value("autoencoder.latent", latent, ["mode", "sample"])
        self.vae = vae
        cfg = vae.config
        self.scaling_factor = float(scaling_factor if scaling_factor is not None else cfg.scaling_factor)
        self.shift_factor = float(getattr(cfg, "shift_factor", None) or 0.0)
        self.latent = latent
        self.info = dict(info or {})
        self.requires_grad_(False)
        self.train(False)

    def train(self, mode: bool = True) -> FrozenAutoencoder:
        """Always eval (a parent's ``.train()`` must not change it)."""
        return super().train(False)

    @property
    def factor(self) -> int:
        """Spatial down-sampling factor f (H/h): one per down block after the first."""
        return 2 ** (len(self.vae.config.block_out_channels) - 1)

    @property
    def latent_channels(self) -> int:
        return int(self.vae.config.latent_channels)

    def latent_shape(self, resolution: int) -> tuple[int, int, int]:
        return (self.latent_channels, resolution // self.factor, resolution // self.factor)

    def encode(self, images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """images (B,3,H,W) in [-1,1] -> scaled latents (B, c, H/f, W/f)."""
        dist = self.vae.encode(images).latent_dist
        z = dist.mode() if self.latent == "mode" else dist.sample(generator=generator)
        return (z - self.shift_factor) * self.scaling_factor

    def posterior(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """images (B,3,H,W) in [-1,1] -> the posterior's (mean, std), scaled like ``encode``:
        ``mean + std * eps`` is what ``encode`` samples, ``mean`` its mode (Kingma & Welling
        2014, Eq. 10; shift and scale as in ``encode``)."""
        dist = self.vae.encode(images).latent_dist
        return (dist.mean - self.shift_factor) * self.scaling_factor, dist.std * self.scaling_factor

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """scaled latents (B, c, h, w) -> images (B, 3, h*f, w*f), about [-1,1] (not clamped)."""
        return self.vae.decode(latents / self.scaling_factor + self.shift_factor).sample

    def extra_repr(self) -> str:
        return (
            f"factor={self.factor}, latent_channels={self.latent_channels}, "
            f"scaling_factor={self.scaling_factor:.5g}, latent={self.latent!r}, "
            f"source={self.info.get('source')!r}"
        )


def vae_block_channels(arch: dict, resolution: int) -> list[int]:
    """Channels per level: ``arch.factor`` (null: f=4 up to 32 px, f=8 above) sets how many of
    ``arch.channels`` are used (log2(f) + 1 levels)."""
    factor = arch.get("factor") or (4 if resolution <= 32 else 8)
    levels = int(factor).bit_length()  # f=4 -> 3 levels, f=8 -> 4 levels
    if factor & (factor - 1) or factor < 1:
        from ldm_vs_gan.errors import bad_value

        raise bad_value("autoencoder.arch.factor", factor, "a power of two (1, 2, 4, 8, 16)")
    chans = list(arch["channels"])
    if len(chans) < levels:
        chans = chans + [chans[-1]] * (levels - len(chans))
    return [int(c) for c in chans[:levels]]


def build_autoencoder_kl(arch: dict, resolution: int, *, scaling_factor: float = 1.0) -> nn.Module:
    """A diffusers ``AutoencoderKL`` from a small architecture dict, random weights.

    arch: ``channels`` (per level), ``factor`` (null = by resolution), ``layers_per_block``,
    ``latent_channels``, ``norm_num_groups``.
    """
    from diffusers import AutoencoderKL

    chans = vae_block_channels(arch, resolution)
    n = len(chans)
    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * n,
        up_block_types=("UpDecoderBlock2D",) * n,
        block_out_channels=tuple(chans),
        layers_per_block=int(arch.get("layers_per_block", 1)),
        latent_channels=int(arch.get("latent_channels", 4)),
        norm_num_groups=int(arch.get("norm_num_groups", 32)),
        sample_size=int(resolution),
        scaling_factor=float(scaling_factor),
        mid_block_add_attention=bool(arch.get("mid_block_attention", True)),
    )
