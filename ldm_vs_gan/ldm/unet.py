"""The denoising UNet of the latent diffusion model, written from scratch.

Layout of Ho et al. 2020 (DDPM, Appendix B) as extended by Rombach et al. 2022 (LDM, Sec. 3.3,
Appendix E.2) and Stable Diffusion v1: sinusoidal timestep embedding -> MLP; per resolution
level ``layers_per_block`` residual blocks (GroupNorm, SiLU, conv, additive time conditioning),
each followed by a spatial transformer (self + cross attention) at the attention levels; a
strided-conv downsample between levels; a middle block (res, transformer, res); a mirrored up
path with ``layers_per_block + 1`` residual blocks per level, each concatenating one skip
connection; nearest-neighbour upsample + conv. The parameter layout is the same as diffusers'
``UNet2DConditionModel`` with the same settings (counts agree exactly; see
``tests/test_ldm_unet.py``), so published SD shapes map one to one.

Forward: ``unet(x (B,C,h,w), t (B,) float or int, context (B,L,D), mask (B,L) bool, pooled (B,E) or
None) -> (B,C,h,w)``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from ldm_vs_gan.errors import bad_value, require
from ldm_vs_gan.ldm.attention import SpatialTransformer


@dataclass
class UNetConfig:
    in_channels: int = 4  # latent channels of the autoencoder
    out_channels: int = 4  # same as in_channels (the prediction lives in latent space)
    base_channels: int = 64  # channels of level 0
    channel_mult: list[int] = field(default_factory=lambda: [1, 2, 4])  # per level, x base
    layers_per_block: int = 2  # residual blocks per level on the way down (up: +1)
    attention_levels: list[int] = field(default_factory=lambda: [1, 2])  # level indices with transformers
    heads: int = 8  # attention heads (ignored when head_dim is set)
    head_dim: int | None = None  # fixed width per head instead (heads = channels // head_dim)
    transformer_depth: int = 1  # transformer blocks per attention site
    context_dim: int = 512  # text token width D of the frozen text encoder
    dropout: float = 0.0  # in residual blocks and feed-forwards
    norm_groups: int = 32  # GroupNorm groups everywhere
    mid_attention: bool = True  # transformer in the middle block
    gradient_checkpointing: bool = False  # recompute blocks in backward (memory for compute)
    # Width E of a pooled text embedding added to the time embedding (SDXL's ``text_embeds``
    # add-embedding, Podell et al. 2023 s2.1; Imagen's pooled conditioning); 0 = off (SD v1).
    pooled_dim: int = 0

    def heads_at(self, channels: int) -> int:
        return channels // self.head_dim if self.head_dim else self.heads


#: Named sizes. ``in_channels`` and ``context_dim`` are overwritten from the autoencoder and text
#: encoder by the family; the values here are those of the setting each size is named after.
SIZES: dict[str, dict] = {
    # tests: ~0.2M params
    "tiny": dict(
        base_channels=32,
        channel_mult=[1, 2],
        layers_per_block=1,
        attention_levels=[1],
        heads=2,
        norm_groups=8,
        context_dim=64,
    ),
    # the default on the toy world (8x8x4 latents, toy CLIP tokens): attention at 8x8 and 4x4,
    # one res block per level (4.3M params, 0.6 GFLOP per training image: CPU-sized)
    "toy": dict(
        base_channels=64,
        channel_mult=[1, 2],
        layers_per_block=1,
        attention_levels=[0, 1],
        heads=4,
        norm_groups=32,
        context_dim=128,
    ),
    # the 2023 thesis: 16x16x4 latents (128 px, f=8), CLIP ViT-B/32 text tokens (512), ~24.8M params
    "thesis128": dict(
        base_channels=64,
        channel_mult=[1, 2, 4],
        layers_per_block=2,
        attention_levels=[1, 2],
        heads=8,
        norm_groups=32,
        context_dim=512,
    ),
    # Stable Diffusion v1 shape (LDM-KL-8-G / SD v1 configs): 320, [1,2,4,4], attention at levels 0-2, 8 heads,
    # context 768: ~860M params
    "sd": dict(
        base_channels=320,
        channel_mult=[1, 2, 4, 4],
        layers_per_block=2,
        attention_levels=[0, 1, 2],
        heads=8,
        norm_groups=32,
        context_dim=768,
    ),
}


def unet_config(size: str, **overrides) -> UNetConfig:
    """The registry entry ``size`` with ``overrides`` (None values are ignored)."""
    if size not in SIZES:
        raise bad_value("model.unet.size", size, SIZES)
    names = {f.name for f in fields(UNetConfig)}
    for k in overrides:
        if k not in names:
            raise bad_value("model.unet." + k, overrides[k], sorted(names))
    kw = {**SIZES[size], **{k: v for k, v in overrides.items() if v is not None}}
    cfg = UNetConfig(**kw)
    levels = len(cfg.channel_mult)
    require(
        all(0 <= lvl < levels for lvl in cfg.attention_levels),
        f"model.unet.attention_levels={cfg.attention_levels} must be level indices in [0, {levels})",
    )
    for m in cfg.channel_mult:
        require(
            (cfg.base_channels * m) % cfg.norm_groups == 0,
            f"model.unet.norm_groups={cfg.norm_groups} must divide every level's channels",
        )
    return cfg


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal embedding of (possibly fractional) timesteps (Vaswani et al. 2017, Sec. 3.5;
    DDPM Appendix B). t: (B,) -> (B, dim), [cos | sin] halves as in SD."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    args = t.float()[:, None] * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


class ResBlock(nn.Module):
    """GroupNorm -> SiLU -> conv3x3 -> + Linear(temb) -> GroupNorm -> SiLU -> dropout -> conv3x3,
    plus a 1x1 shortcut when channels change (DDPM Appendix B / diffusers ``ResnetBlock2D``)."""

    def __init__(self, cin: int, cout: int, temb: int, groups: int, dropout: float):
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, cin, eps=1e-5)
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.temb = nn.Linear(temb, cout)
        self.norm2 = nn.GroupNorm(groups, cout, eps=1e-5)
        self.drop = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.temb(emb)[:, :, None, None]  # emb is already SiLU'd once by the UNet
        h = self.conv2(self.drop(F.silu(self.norm2(h))))
        return self.skip(x) + h


class Downsample(nn.Module):
    def __init__(self, ch: int):
        super().__init__()
        self.conv = nn.Conv2d(ch, ch, 3, stride=2, padding=1)

    def forward(self, x):  # (B,C,H,W) -> (B,C,H/2,W/2)
        return self.conv(x)


class Upsample(nn.Module):
    def __init__(self, ch: int):
        super().__init__()
        self.conv = nn.Conv2d(ch, ch, 3, padding=1)

    def forward(self, x):  # (B,C,H,W) -> (B,C,2H,2W)
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class Stage(nn.Module):
    """One residual block, optionally followed by a spatial transformer."""

    def __init__(self, cin, cout, cfg: UNetConfig, temb: int, attention: bool):
        super().__init__()
        self.res = ResBlock(cin, cout, temb, cfg.norm_groups, cfg.dropout)
        self.attn = (
            SpatialTransformer(
                cout, cfg.context_dim, cfg.heads_at(cout), cfg.transformer_depth, cfg.norm_groups, cfg.dropout
            )
            if attention
            else None
        )

    def forward(self, x, emb, context, mask):
        x = self.res(x, emb)
        return x if self.attn is None else self.attn(x, context, mask)


class UNet(nn.Module):
    def __init__(self, cfg: UNetConfig):
        super().__init__()
        self.cfg = cfg
        ch0 = cfg.base_channels
        temb = 4 * ch0  # time-embedding width as in DDPM/SD
        self.time_mlp = nn.Sequential(nn.Linear(ch0, temb), nn.SiLU(), nn.Linear(temb, temb))
        # pooled (B,E) -> (B,temb), summed with the time embedding before the shared SiLU
        self.pooled_mlp = (
            nn.Sequential(nn.Linear(cfg.pooled_dim, temb), nn.SiLU(), nn.Linear(temb, temb))
            if cfg.pooled_dim
            else None
        )
        self.conv_in = nn.Conv2d(cfg.in_channels, ch0, 3, padding=1)

        chans = [ch0 * m for m in cfg.channel_mult]
        attn = set(cfg.attention_levels)
        nlev = len(chans)
        # Down path: every stage output (and every downsample) is pushed as a skip connection.
        self.down = nn.ModuleList()
        skips = [ch0]
        cur = ch0
        for lvl, ch in enumerate(chans):
            for _ in range(cfg.layers_per_block):
                self.down.append(Stage(cur, ch, cfg, temb, lvl in attn))
                cur = ch
                skips.append(cur)
            if lvl < nlev - 1:
                self.down.append(Downsample(cur))
                skips.append(cur)
        self.mid1 = ResBlock(cur, cur, temb, cfg.norm_groups, cfg.dropout)
        self.mid_attn = (
            SpatialTransformer(
                cur, cfg.context_dim, cfg.heads_at(cur), cfg.transformer_depth, cfg.norm_groups, cfg.dropout
            )
            if cfg.mid_attention
            else None
        )
        self.mid2 = ResBlock(cur, cur, temb, cfg.norm_groups, cfg.dropout)
        # Up path: layers_per_block + 1 stages per level, each eats one skip (concatenated).
        self.up = nn.ModuleList()
        for lvl in reversed(range(nlev)):
            ch = chans[lvl]
            for _ in range(cfg.layers_per_block + 1):
                self.up.append(Stage(cur + skips.pop(), ch, cfg, temb, lvl in attn))
                cur = ch
            if lvl > 0:
                self.up.append(Upsample(cur))
        self.norm_out = nn.GroupNorm(cfg.norm_groups, cur, eps=1e-5)
        self.conv_out = nn.Conv2d(cur, cfg.out_channels, 3, padding=1)
        self.downsample_factor = 2 ** (nlev - 1)

    def _run(self, block, *args):
        if self.cfg.gradient_checkpointing and self.training and torch.is_grad_enabled():
            return checkpoint(block, *args, use_reentrant=False)
        return block(*args)

    def forward(
        self,
        x: torch.Tensor,
        t: torch.Tensor,
        context: torch.Tensor,
        mask: torch.Tensor | None = None,
        pooled: torch.Tensor | None = None,
    ) -> torch.Tensor:
        if t.ndim == 0:
            t = t.expand(x.shape[0])
        emb = self.time_mlp(timestep_embedding(t, self.cfg.base_channels))  # (B, temb)
        if self.pooled_mlp is not None:
            if pooled is None:
                raise ValueError(
                    "this UNet was built with pooled_dim > 0: pass pooled (B, E) text embeddings"
                )
            emb = emb + self.pooled_mlp(pooled.to(emb.dtype))
        # SiLU once here: every ResBlock projects SiLU(temb) (diffusers applies it per block; same math).
        emb = F.silu(emb)
        if mask is not None:
            # A row with no valid token would make attention softmax over nothing (NaN): keep token 0.
            mask = mask.clone()
            mask[:, 0] = True
        h = self.conv_in(x)
        hs = [h]
        for blk in self.down:
            h = self._run(blk, h) if isinstance(blk, Downsample) else self._run(blk, h, emb, context, mask)
            hs.append(h)
        h = self._run(self.mid1, h, emb)
        if self.mid_attn is not None:
            h = self._run(self.mid_attn, h, context, mask)
        h = self._run(self.mid2, h, emb)
        for blk in self.up:
            if isinstance(blk, Upsample):
                h = self._run(blk, h)
            else:
                h = self._run(blk, torch.cat([h, hs.pop()], dim=1), emb, context, mask)
        return self.conv_out(F.silu(self.norm_out(h)))


def build_unet(size: str, **overrides) -> UNet:
    return UNet(unet_config(size, **overrides))


def config_dict(cfg: UNetConfig) -> dict:
    return asdict(cfg)
