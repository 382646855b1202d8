"""Diffusers' ``UNet2DConditionModel`` built with the same architecture as one of our UNet configs.

The reference our UNet is checked against (parameter counts in the tests) and timed against
(``benchmarks/bench_unet.py``): same channels, levels, attention placement, heads, context dim,
transformer depth and middle block. Imports diffusers lazily: the package uses it only here and
for ``AutoencoderKL``.
"""

from __future__ import annotations

from ldm_vs_gan.ldm.unet import UNetConfig


def diffusers_twin(cfg: UNetConfig, sample_size: int = 16):
    from diffusers import UNet2DConditionModel

    n = len(cfg.channel_mult)
    return UNet2DConditionModel(
        sample_size=sample_size,
        in_channels=cfg.in_channels,
        out_channels=cfg.out_channels,
        down_block_types=[
            ("CrossAttnDownBlock2D" if i in cfg.attention_levels else "DownBlock2D") for i in range(n)
        ],
        up_block_types=[
            ("CrossAttnUpBlock2D" if i in cfg.attention_levels else "UpBlock2D") for i in reversed(range(n))
        ],
        block_out_channels=[cfg.base_channels * m for m in cfg.channel_mult],
        layers_per_block=cfg.layers_per_block,
        cross_attention_dim=cfg.context_dim,
        attention_head_dim=cfg.heads,  # diffusers' historical name: it is the number of heads
        norm_num_groups=cfg.norm_groups,
        use_linear_projection=True,
        transformer_layers_per_block=cfg.transformer_depth,
        mid_block_type="UNetMidBlock2DCrossAttn" if cfg.mid_attention else None,
    )
