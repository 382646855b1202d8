"""The toy world's config schemas: the ``data`` node of ``data=toy`` (the world and its judge)
and the ``clip`` / ``autoencoder`` nodes of ``source: toy`` (configs/data/toy.yaml,
configs/clip/toy.yaml, configs/autoencoder/toy.yaml state the same values)."""

from __future__ import annotations

from dataclasses import dataclass, field

from ldm_vs_gan import schema
from ldm_vs_gan.components.config import AutoencoderNode, CLIPNode
from ldm_vs_gan.data.config import DataConfig
from ldm_vs_gan.errors import bad_value


@dataclass
class JudgeConfig:
    """The toy judge (``data.judge``): trained once on the train split, cached."""

    # Training passes over the train split.
    epochs: int = 2
    # Batch size of the judge's training.
    batch_size: int = 128
    # Adam learning rate (one-cycle schedule).
    lr: float = 0.003
    # Width of the first conv layer (doubles twice); the feature dimension (FID-toy) is 8x this.
    width: int = 16
    # Seed of the judge's initialisation and data order.
    seed: int = 0


LAYOUTS = ("halves", "aligned")


@dataclass
class ToyData(DataConfig):
    """``configs/data/toy.yaml``: the generated toy world ([world] keys make its cache key)."""

    # The toy world, generated on first use.
    name: str = "toy"
    # [world] Image side in pixels: 32 or 64.
    resolution: int = 32
    # [world] Seed of the world itself (which images exist).
    world_seed: int = 0
    # [world] Number of training samples.
    n_train: int = 50000
    # [world] Number of held-out samples.
    n_heldout: int = 2000
    # [world] Share of images with two objects (and a relation).
    two_object_share: float = 0.3
    # [world] Two-object placement: aligned | halves.
    layout: str = "aligned"
    # [world] Background RGB colour (plain).
    background: list[int] = field(default_factory=lambda: [40, 40, 40])
    # [world] Samples per shard file.
    shard_size: int = 10000
    # Processes that render the world on first use (does not change its bytes).
    gen_workers: int = 2
    # Cache root for the world and its judge; None = $LDM_VS_GAN_CACHE or ~/.cache/ldm_vs_gan.
    cache_dir: str | None = None
    # Read each shard into RAM once per process.
    in_memory: bool = True
    # Keep decoded samples in RAM after their first read (deterministic decoding only).
    cache_decoded: bool = True
    # DataLoader worker processes (0 = load in the training process).
    num_workers: int = 0
    # Crop after resizing the shorter side: center | random (a no-op: images are square).
    crop: str = "center"
    # Random horizontal flip: must stay false, it would break "left of" captions.
    hflip: bool = False
    # The toy judge.
    judge: JudgeConfig = field(default_factory=JudgeConfig)

    def check(self, prefix: str) -> None:
        super().check(prefix)
        if self.hflip:
            raise bad_value(f"{prefix}.hflip", True, ["false (the toy world has left/right relations)"])
        schema.choice(prefix, "layout", self.layout, LAYOUTS)
        if self.resolution not in (32, 64):
            raise bad_value(f"{prefix}.resolution", self.resolution, [32, 64])
        if not 0.0 <= self.two_object_share <= 1.0:
            raise bad_value(f"{prefix}.two_object_share", self.two_object_share, "a share in [0, 1]")
        for k in ("n_train", "n_heldout", "shard_size"):
            if getattr(self, k) <= 0:
                raise bad_value(f"{prefix}.{k}", getattr(self, k), "a positive integer")


@dataclass
class ToyCLIP(CLIPNode):
    """``configs/clip/toy.yaml``: the toy world's CLIP, trained here once, cached."""

    source: str = "toy"  # the toy CLIP stage (model=clip)
    token_layer: int = 0  # token features from the token embedding (layer 0)


@dataclass
class ToyAutoencoder(AutoencoderNode):
    """``configs/autoencoder/toy.yaml``: the toy world's VAE, trained here once, cached."""

    source: str = "toy"  # the toy VAE stage (model=vae)


def read(data_cfg) -> ToyData:
    """The typed ``data`` node of the toy world (a typed object is returned as it is)."""
    if isinstance(data_cfg, ToyData):
        return data_cfg
    from ldm_vs_gan.data import config

    return config.read(data_cfg, "toy")
