"""Mate-G: GALIP's generator (Tao et al., CVPR 2023, sec. 3.2 and Fig. 3), around a frozen CLIP ViT.

z (B, z_dim) and the sentence embedding e (B, E) give the condition c = concat(z, e) that drives
every affine layer. Shapes for the official ViT-B/32 at 224 px in brackets:

  bridge predictor   Linear(z -> C0*gh*gw)          (B, 64, 7, 7)
                     n x BridgeBlock(c)             (B, 64, 7, 7)
                     conv5x5 C0 -> width           (B, 768, 7, 7)  = bridge
  prompt predictor   Linear(c -> P*width)           P tokens (B, 768), one per prompted block
  frozen ViT         bridge tokens + CLS + pos + ln_pre, all blocks, prompt appended before each
                     prompted block and dropped after  -> patch tokens (B, 768, 7, 7)
  fusion             conv5x5(bridge + 0.1 * vit)   (B, 512, 7, 7)
  image generator    GenBlocks (nearest upsample)   (B, 64, 224, 224)
  to_rgb             LReLU(0.2), conv3x3 -> 3       (B, 3, 224, 224), no tanh (clamp at sampling)

The CLIP model is *not* a sub-module: it is frozen, shared with Mate-D and the text encoder, and
must not appear in this network's parameters, state dict, optimizer or DDP buckets. Gradients
still flow through it to the bridge and the prompts (its weights have requires_grad False).
"""

from __future__ import annotations

import torch
from torch import nn

from ldm_vs_gan.galip.layers import BridgeBlock, GenBlock


class SharedRef:
    """A reference that ``copy.deepcopy`` does not follow (the frozen CLIP is shared, not owned)."""

    def __init__(self, obj):
        self.obj = obj

    def __deepcopy__(self, memo):
        return self


class MateG(nn.Module):
    def __init__(
        self,
        clip,
        *,
        sentence_dim: int,
        z_dim: int = 100,
        bridge_channels: int = 64,
        bridge_mid_channels: int = 32,
        bridge_blocks: int = 4,
        prompt_blocks: list[int],
        fusion_channels: int = 512,
        sizes: list[int],
        channels: list[int],
        vit_mix: float = 0.1,
    ):
        super().__init__()
        if len(sizes) != len(channels):
            raise ValueError(f"sizes {sizes} and channels {channels} must have the same length")
        # Held outside the module registry on purpose (see module docstring); a deepcopy (the
        # engine's EMA copy) shares the same frozen CLIP instead of duplicating it.
        self._clip = SharedRef(clip)
        self.z_dim = z_dim
        self.width = clip.vit_width
        self.grid = tuple(clip.vit_grid)  # (gh, gw)
        self.prompt_blocks = list(prompt_blocks)
        self.vit_mix = vit_mix
        self.bridge_channels = bridge_channels
        cond_dim = z_dim + sentence_dim
        gh, gw = self.grid

        # Bridge-feature predictor: the image layout comes from z alone, the text enters via c.
        self.fc_code = nn.Linear(z_dim, bridge_channels * gh * gw)
        self.bridge_blocks = nn.ModuleList(
            BridgeBlock(cond_dim, bridge_channels, bridge_mid_channels, bridge_channels)
            for _ in range(bridge_blocks)
        )
        self.to_bridge = nn.Conv2d(bridge_channels, self.width, 5, 1, 2)
        # Prompt predictor: one learned token per prompted ViT block, from c.
        self.fc_prompt = nn.Linear(cond_dim, len(self.prompt_blocks) * self.width)
        # Fusion of the bridge with the frozen ViT's output.
        self.fuse = nn.Conv2d(self.width, fusion_channels, 5, 1, 2)
        # Image generator.
        blocks, in_ch = [], fusion_channels
        for size, out_ch in zip(sizes, channels):
            blocks.append(GenBlock(cond_dim, in_ch, out_ch, (size, size)))
            in_ch = out_ch
        self.gen_blocks = nn.ModuleList(blocks)
        self.to_rgb = nn.Sequential(nn.LeakyReLU(0.2), nn.Conv2d(in_ch, 3, 3, 1, 1))

    def parameter_groups(self) -> dict[str, int]:
        """Trainable parameter counts per part (for the report and the parameter-count test)."""

        def n(*mods):
            return sum(p.numel() for m in mods for p in m.parameters() if p.requires_grad)

        return {
            "bridge_predictor": n(self.fc_code, self.bridge_blocks, self.to_bridge),
            "prompt_predictor": n(self.fc_prompt),
            "fusion": n(self.fuse),
            "generator_blocks": n(self.gen_blocks),
            "to_rgb": n(self.to_rgb),
        }

    def forward(self, z: torch.Tensor, sentence: torch.Tensor) -> torch.Tensor:
        """z (B, z_dim), sentence (B, E) -> images (B, 3, H, W), unbounded (no tanh, as official)."""
        b = z.shape[0]
        gh, gw = self.grid
        cond = torch.cat([z, sentence.to(z.dtype)], dim=1)  # (B, z_dim + E)
        h = self.fc_code(z).view(b, self.bridge_channels, gh, gw)
        for block in self.bridge_blocks:
            h = block(h, cond)
        bridge = self.to_bridge(h)  # (B, width, gh, gw)
        prompts = self.fc_prompt(cond).view(b, len(self.prompt_blocks), self.width)
        vit = self._clip.obj.vit_prompted_forward(
            bridge, {blk: prompts[:, i] for i, blk in enumerate(self.prompt_blocks)}
        )  # (B, width, gh, gw)
        h = self.fuse(bridge + self.vit_mix * vit.to(bridge.dtype))
        for block in self.gen_blocks:
            h = block(h, cond)
        return self.to_rgb(h)
