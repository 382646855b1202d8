"""The typed ``model`` node of the GALIP family: one dataclass per sub-node of
``configs/model/galip.yaml``, key for key, whose defaults are the shipped YAML values (the single
source of truth: a config without a key gets the shipped model). Read it with
``schema.read(GALIPConfig, cfg.model, "model")``; see ``ldm_vs_gan/schema.py``. Block indices
(taps, prompt_blocks) are 1-based; None = the official choice mapped to the ViT's depth."""

from __future__ import annotations

from dataclasses import dataclass, field

from ldm_vs_gan import schema
from ldm_vs_gan.errors import bad_value, require


@dataclass
class GeneratorNode:
    """``model.generator``: Mate-G (bridge predictor, prompts, DF-GAN image generator)."""

    bridge_channels: int = 64  # channels of the bridge predictor's map on the ViT grid
    bridge_mid_channels: int = 32  # inner channels of its residual fusion blocks
    bridge_blocks: int = 4  # residual fusion blocks in the bridge predictor
    prompt_blocks: list[int] | None = None  # 1-based ViT blocks with one predicted prompt each
    vit_mix: float = 0.1  # weight of the frozen ViT's output added to the bridge
    ngf: int = 32  # DF-GAN channel base: the last generator block has ngf channels
    max_mult: int = 4  # deeper blocks have ngf * min(2^k, max_mult) channels
    fusion_channels: int | None = None  # channels out of the fusion conv (None = ngf * max_mult)
    sizes: list[int] | None = None  # output side per block (None = powers of two to resolution)
    channels: list[int] | None = None  # output channels per block (None = DF-GAN schedule)

    def check(self, prefix: str) -> None:
        if self.sizes is not None and self.channels is not None:
            require(
                len(self.channels) == len(self.sizes),
                f"{prefix}.channels={self.channels} needs one entry per block of sizes={self.sizes}",
            )


@dataclass
class DiscriminatorNode:
    """``model.discriminator``: Mate-D (feature extractor over ViT taps, quality assessor)."""

    taps: list[int] | None = None  # 1-based ViT blocks whose patch tokens Mate-D reads
    out_channels: int = 128  # channels out of the feature extractor
    assessor_channels: int = 64  # hidden channels of the quality assessor


@dataclass
class LossNode:
    """``model.loss``: weights of the G and D objectives (galip/losses.py)."""

    clip_weight: float = 4.0  # weight of the CLIP-similarity term in the generator loss
    magp_k: float = 2.0  # MA-GP weight k
    magp_p: float = 6.0  # MA-GP power p
    mismatch_weight: float = 0.5  # weight of the (fake + mismatched) hinge terms in the D loss
    mode_seeking: float = 0.0  # weight of the MSGAN mode-seeking term in the G loss (0 = off)

    def check(self, prefix: str) -> None:
        require(self.mode_seeking >= 0, f"{prefix}.mode_seeking={self.mode_seeking} must be >= 0")


@dataclass
class OptimNode:
    """``model.optim``: Adam of the generator and discriminator phases."""

    lr_g: float = 4.0e-4  # learning rate of the generator phase
    lr_d: float = 4.0e-4  # learning rate of the discriminator phase
    betas: list[float] = field(default_factory=lambda: [0.0, 0.9])  # Adam betas of both phases
    grad_clip_g: float | None = None  # max global grad norm of the G phase (None = none)
    grad_clip_d: float | None = None  # max global grad norm of the D phase (None = none)

    def check(self, prefix: str) -> None:
        require(len(self.betas) == 2, f"{prefix}.betas={list(self.betas)} must be two numbers")


@dataclass
class AugmentNode:
    """``model.augment``: augmentation of images before the frozen CLIP (galip/augment.py)."""

    translation: float = 0.125  # DiffAugment translation as a fraction of the side (0 = off)

    def check(self, prefix: str) -> None:
        require(0 <= self.translation < 0.5, f"{prefix}.translation={self.translation} must be in [0, 0.5)")


@dataclass
class SamplingNode:
    """``model.sampling``: the defaults of ``generate``."""

    truncation: float | None = None  # truncation of z at sampling (None = plain N(0, I))


@dataclass
class GALIPConfig:
    """``model`` for ``model=galip`` (configs/model/galip.yaml)."""

    name: str = "galip"  # the family's name in run dirs and reports
    _target_: str = "ldm_vs_gan.galip.family.GALIPFamily"  # the Family class
    z_dim: int = 100  # noise dimension (each affine layer's condition is concat(z, sentence))
    generator: GeneratorNode = field(default_factory=GeneratorNode)  # Mate-G
    discriminator: DiscriminatorNode = field(default_factory=DiscriminatorNode)  # Mate-D
    loss: LossNode = field(default_factory=LossNode)  # objective weights
    optim: OptimNode = field(default_factory=OptimNode)  # optimisers of both phases
    augment: AugmentNode = field(default_factory=AugmentNode)  # augmentation before the CLIP
    share_fake: bool = True  # one fake batch per step, made in the D phase, reused by the G phase
    ema: bool = False  # keep an EMA of the generator for sampling
    sampling: SamplingNode = field(default_factory=SamplingNode)  # generate's defaults


def read(node) -> GALIPConfig:
    """``node`` (the ``model`` node: DictConfig, dict or None) as a :class:`GALIPConfig`. The
    top-level switches must be real booleans (OmegaConf would turn ``"yes"`` or ``3`` into true)."""
    for key in ("share_fake", "ema"):
        v = node.get(key) if node is not None and hasattr(node, "get") else None
        if v is not None and not isinstance(v, bool):
            raise bad_value(f"model.{key}", v, "true, false")
    return schema.read(GALIPConfig, node, "model")
