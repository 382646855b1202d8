"""The stages' config schemas: the ``model`` node of ``model=clip`` and ``model=vae``
(configs/model/clip.yaml, configs/model/vae.yaml state the same values)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ldm_vs_gan import schema
from ldm_vs_gan.components.config import arch_field, check_arch
from ldm_vs_gan.errors import bad_value

STAGE_CLIP_ARCH = {
    "embed_dim": 128,
    "vision_cfg": {
        "image_size": None,
        "grid": 8,
        "patch_size": None,
        "conv_stem": [32, 64],
        "width": 128,
        "layers": 4,
        "head_width": 32,
    },
    "text_cfg": {"context_length": 24, "vocab_size": 49408, "width": 128, "heads": 4, "layers": 3},
}
STAGE_VAE_ARCH = {
    "channels": [32, 64, 64, 64],
    "factor": None,
    "layers_per_block": 1,
    "latent_channels": 4,
    "norm_num_groups": 32,
    "mid_block_attention": True,
}


@dataclass
class CLIPStageConfig:
    """``model`` for ``model=clip`` (configs/model/clip.yaml): the CLIP stage."""

    name: str = "clip"  # the stage's name in run dirs
    _target_: str = "ldm_vs_gan.stages.clip.CLIPStage"  # the Family class
    # open_clip model config; vision_cfg.image_size null = data resolution, grid = patches per side
    arch: Any = arch_field(STAGE_CLIP_ARCH)
    lr: float = 0.002  # AdamW learning rate
    betas: list[float] = field(default_factory=lambda: [0.9, 0.98])  # AdamW betas
    weight_decay: float = 0.1  # AdamW weight decay (matrices only)
    grad_clip: float | None = 1.0  # gradient-norm clip (null = none)
    init_logit_scale: float | None = None  # initial logit scale (null = open_clip's log(1/0.07))
    ema: bool = True  # keep an EMA of the weights and export it

    def check(self, prefix: str) -> None:
        check_arch(prefix, self.arch)
        if self.arch is None:
            raise bad_value(f"{prefix}.arch", None, "an open_clip model config")
        if len(self.betas) != 2:
            raise bad_value(f"{prefix}.betas", self.betas, "two numbers [beta1, beta2]")
        schema.at_least(prefix, "lr", self.lr, 0)


@dataclass
class VAEStageConfig:
    """``model`` for ``model=vae`` (configs/model/vae.yaml): the VAE stage."""

    name: str = "vae"  # the stage's name in run dirs
    _target_: str = "ldm_vs_gan.stages.vae.VAEStage"  # the Family class
    # AutoencoderKL architecture (factor null = 2 ** (len(channels) - 1))
    arch: Any = arch_field(STAGE_VAE_ARCH)
    lr: float = 0.002  # Adam learning rate
    betas: list[float] = field(default_factory=lambda: [0.9, 0.99])  # Adam betas
    grad_clip: float | None = 1.0  # gradient-norm clip (null = none)
    l1: float = 1.0  # weight of the L1 reconstruction loss
    l2: float = 1.0  # weight of the L2 reconstruction loss
    kl: float = 1.0e-06  # weight of the KL term

    def check(self, prefix: str) -> None:
        check_arch(prefix, self.arch)
        if self.arch is None:
            raise bad_value(f"{prefix}.arch", None, "an AutoencoderKL architecture")
        if len(self.betas) != 2:
            raise bad_value(f"{prefix}.betas", self.betas, "two numbers [beta1, beta2]")
        schema.at_least(prefix, "lr", self.lr, 0)
