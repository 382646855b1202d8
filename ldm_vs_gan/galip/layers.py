"""Building blocks shared by Mate-G and Mate-D (GALIP, Tao et al., CVPR 2023; DF-GAN, Tao et al.,
CVPR 2022). Shapes are written as (B, C, H, W); ``cond`` is GALIP's condition vector
concat(z, sentence), (B, cond_dim).

No normalisation layer anywhere: the text condition enters only through the affine layers
(DF-GAN's "deep fusion"), and the discriminator is a plain conv stack with scalar gates.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class Affine(nn.Module):
    """Text-conditioned channel-wise affine transform (DF-GAN eq. 1): x * gamma(c) + beta(c).

    gamma and beta are each an MLP Linear(cond->C) -> ReLU -> Linear(C->C). The last layers start
    at the identity transform (gamma weight 0, bias 1; beta weight 0, bias 0), so a fresh
    generator is an unconditioned conv net and the text is blended in as training finds it useful.
    """

    def __init__(self, cond_dim: int, channels: int):
        super().__init__()
        self.gamma = nn.Sequential(nn.Linear(cond_dim, channels), nn.ReLU(), nn.Linear(channels, channels))
        self.beta = nn.Sequential(nn.Linear(cond_dim, channels), nn.ReLU(), nn.Linear(channels, channels))
        nn.init.zeros_(self.gamma[2].weight)
        nn.init.ones_(self.gamma[2].bias)
        nn.init.zeros_(self.beta[2].weight)
        nn.init.zeros_(self.beta[2].bias)

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        # (B, C) -> (B, C, 1, 1), broadcast over H, W
        g = self.gamma(cond)[:, :, None, None]
        b = self.beta(cond)[:, :, None, None]
        return x * g + b


class DFBlock(nn.Module):
    """DF-GAN's deep-fusion block (DFBLK): Affine -> LReLU(0.2) -> Affine -> LReLU(0.2)."""

    def __init__(self, cond_dim: int, channels: int):
        super().__init__()
        self.affine0 = Affine(cond_dim, channels)
        self.affine1 = Affine(cond_dim, channels)

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        h = F.leaky_relu(self.affine0(x, cond), 0.2)
        return F.leaky_relu(self.affine1(h, cond), 0.2)


class BridgeBlock(nn.Module):
    """Residual fusion block of the bridge-feature predictor (GALIP's M_Block):
    shortcut(x) + DFBLK(conv(DFBLK(conv(x)))), i.e. conv3x3 in->mid, DFBLK, conv3x3 mid->out, DFBLK.
    Keeps H, W."""

    def __init__(self, cond_dim: int, in_ch: int, mid_ch: int, out_ch: int):
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, mid_ch, 3, 1, 1)
        self.fuse1 = DFBlock(cond_dim, mid_ch)
        self.conv2 = nn.Conv2d(mid_ch, out_ch, 3, 1, 1)
        self.fuse2 = DFBlock(cond_dim, out_ch)
        # A 1x1 shortcut only where the channel count changes (official: learnable_sc).
        self.shortcut = nn.Conv2d(in_ch, out_ch, 1) if in_ch != out_ch else nn.Identity()

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        h = self.fuse1(self.conv1(x), cond)
        h = self.fuse2(self.conv2(h), cond)
        return self.shortcut(x) + h


class GenBlock(nn.Module):
    """Image-generator block (GALIP's G_Block): nearest upsample to ``size``, then
    shortcut(h) + conv3x3(DFBLK(conv3x3(DFBLK(h)))). (B, in, h, w) -> (B, out, size, size)."""

    def __init__(self, cond_dim: int, in_ch: int, out_ch: int, size: tuple[int, int]):
        super().__init__()
        self.size = tuple(size)
        self.fuse1 = DFBlock(cond_dim, in_ch)
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, 1, 1)
        self.fuse2 = DFBlock(cond_dim, out_ch)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, 1, 1)
        self.shortcut = nn.Conv2d(in_ch, out_ch, 1) if in_ch != out_ch else nn.Identity()

    def forward(self, h: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        # Official code: F.interpolate(h, size=...) with the default (nearest) mode; sizes need not
        # be a doubling (7 -> 8 and 128 -> 224 in the COCO configuration).
        if tuple(h.shape[-2:]) != self.size:
            h = F.interpolate(h, size=self.size, mode="nearest")
        r = self.conv1(self.fuse1(h, cond))
        r = self.conv2(self.fuse2(r, cond))
        return self.shortcut(h) + r


class GatedBlock(nn.Module):
    """Mate-D's feature-extractor block (GALIP's D_Block):
    out = shortcut(x) + g * convs(x) [+ b * f_next], with scalar gates g, b initialised to 0, so
    the discriminator starts as the identity on the first tapped CLIP layer and learns how much of
    its own convolutions and of the deeper CLIP layers to blend in.

    convs = conv3x3 (no bias) -> LReLU(0.2) -> conv3x3 (no bias) -> LReLU(0.2). The 1x1 shortcut
    exists only where the channel count changes (the official code also builds it for equal
    widths and never uses it: 1.18M dead parameters at ViT-B/32, not copied).
    """

    def __init__(self, in_ch: int, out_ch: int, takes_feature: bool):
        super().__init__()
        self.convs = nn.Sequential(
            nn.Conv2d(in_ch, out_ch, 3, 1, 1, bias=False),
            nn.LeakyReLU(0.2),
            nn.Conv2d(out_ch, out_ch, 3, 1, 1, bias=False),
            nn.LeakyReLU(0.2),
        )
        self.shortcut = nn.Conv2d(in_ch, out_ch, 1) if in_ch != out_ch else nn.Identity()
        self.gate = nn.Parameter(torch.zeros(1))
        self.feature_gate = nn.Parameter(torch.zeros(1)) if takes_feature else None

    def forward(self, x: torch.Tensor, feature: torch.Tensor | None = None) -> torch.Tensor:
        out = self.shortcut(x) + self.gate * self.convs(x)
        if self.feature_gate is not None:
            out = out + self.feature_gate * feature
        return out
