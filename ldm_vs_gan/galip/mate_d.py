"""Mate-D: GALIP's discriminator (Tao et al., CVPR 2023, sec. 3.1 and Fig. 2).

The frozen CLIP ViT (not part of this module) gives patch tokens after the tapped blocks (no CLS,
no LayerNorm), each (B, width, gh, gw). This module holds only the trainable parts:

  feature extractor  start from the first tap; for each further tap a GatedBlock
                     out = out + g * convs(out) + b * f_next (g, b zero-init scalars);
                     then one GatedBlock width -> out_channels with a 1x1 shortcut
                                                         (B, 512, 7, 7) at ViT-B/32
  quality assessor   tile the sentence embedding over the grid, concatenate
                                                         (B, 512 + E, 7, 7)
                     conv k1 (no bias) -> LReLU(0.2) -> conv k2 (no bias)   (B, 1, 1, 1)
                     k1, k2 chosen so the grid ends at 1x1 (official 7x7: 4, 4).

The inputs are the CLIP features and the sentence embedding, so MA-GP can differentiate the logit
with respect to both (official: NetD then NetC on the same inputs).
"""

from __future__ import annotations

import torch
from torch import nn

from ldm_vs_gan.galip.arch import assessor_kernels
from ldm_vs_gan.galip.layers import GatedBlock


class MateD(nn.Module):
    #: MA-GP differentiates Mate-D's input gradients again: trainer.compile leaves it eager.
    double_backward = True

    def __init__(
        self,
        *,
        width: int,
        grid: tuple[int, int],
        n_taps: int,
        sentence_dim: int,
        out_channels: int = 512,
        assessor_channels: int = 128,
    ):
        super().__init__()
        if n_taps < 1:
            raise ValueError("Mate-D needs at least one tapped ViT block")
        self.n_taps = n_taps
        self.blend = nn.ModuleList(GatedBlock(width, width, takes_feature=True) for _ in range(n_taps - 1))
        self.main = GatedBlock(width, out_channels, takes_feature=False)
        kh, kh2 = assessor_kernels(grid[0])
        kw, kw2 = assessor_kernels(grid[1])
        self.assessor = nn.Sequential(
            nn.Conv2d(out_channels + sentence_dim, assessor_channels, (kh, kw), 1, 0, bias=False),
            nn.LeakyReLU(0.2),
            nn.Conv2d(assessor_channels, 1, (kh2, kw2), 1, 0, bias=False),
        )

    def parameter_groups(self) -> dict[str, int]:
        def n(*mods):
            return sum(p.numel() for m in mods for p in m.parameters() if p.requires_grad)

        return {"feature_extractor": n(self.blend, self.main), "assessor": n(self.assessor)}

    def forward(
        self, taps: list[torch.Tensor] | torch.Tensor, sentence: torch.Tensor, *more: torch.Tensor
    ) -> torch.Tensor | tuple[torch.Tensor, ...]:
        """taps: n_taps tensors (B, width, gh, gw) (or stacked (B, n_taps, width, gh, gw));
        sentence (B, E) -> logits (B,). Extra sentence batches ``more`` (each (B, E)) are judged
        against the same image features, which are computed once (official GALIP: NetD once on
        the real image, NetC on it with the matching and the mismatched captions); then the
        result is a tuple of logits, one (B,) per sentence batch."""
        if isinstance(taps, torch.Tensor):
            taps = list(taps.unbind(1))
        if len(taps) != self.n_taps:
            raise ValueError(f"Mate-D expects {self.n_taps} tapped feature maps, got {len(taps)}")
        out = taps[0]
        for block, feat in zip(self.blend, taps[1:]):
            out = block(out, feat)
        out = self.main(out)  # (B, out_channels, gh, gw)
        logits = tuple(self._assess(out, s) for s in (sentence, *more))
        return logits if more else logits[0]

    def _assess(self, out: torch.Tensor, sentence: torch.Tensor) -> torch.Tensor:
        """Quality assessor: features (B, C, gh, gw) + sentence (B, E) -> logits (B,)."""
        cond = sentence.to(out.dtype)[:, :, None, None].expand(-1, -1, *out.shape[-2:])
        logit = self.assessor(torch.cat([out, cond], dim=1))  # (B, 1, 1, 1)
        return logit.flatten(1).mean(1)  # (B,)
