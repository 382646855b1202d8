"""The data room's config schemas: one dataclass per file in ``configs/data/``, the single source
of the ``data`` node's defaults (field defaults = the shipped YAML values; the YAML files document
each key). :func:`read` gives the typed object of a node (a DictConfig, a plain dict, a partial
node: a missing key gets the schema default) or a one-line :class:`ConfigError` naming
``data.<key>`` (unknown key, wrong type, or a value its ``check`` refuses).
"""

import typing
from dataclasses import dataclass, field, is_dataclass
from typing import Any

from omegaconf import OmegaConf

from ldm_vs_gan import schema
from ldm_vs_gan.errors import bad_value


@dataclass
class DataConfig:
    """The keys every source shares: how images are decoded and loaded."""

    # Source of the data: toy | laion | coco | folder.
    name: str = ""
    # Image side in pixels (shorter side resized, then cropped square).
    resolution: int = 256
    # DataLoader worker processes per rank (0 = load in the training process).
    num_workers: int = 0
    # Crop after resizing the shorter side: center | random.
    crop: str = "center"
    # Random horizontal flip (p = 0.5).
    hflip: bool = False
    # Skip images whose shorter side is below this (0 = keep all).
    min_size: int = 0
    # Skip images with long/short ratio above this (0 = no limit).
    max_aspect: float = 0.0
    # Skip images with more pixels than this (decompression bombs).
    max_pixels: int = 89_478_485
    # Grayscale/CMYK/alpha images: convert | skip.
    image_modes: str = "convert"

    def check(self, prefix: str) -> None:
        schema.choice(prefix, "crop", self.crop, ["center", "random"])
        schema.choice(prefix, "image_modes", self.image_modes, ["convert", "skip"])
        if self.resolution <= 0:
            raise bad_value(f"{prefix}.resolution", self.resolution, "a positive number of pixels")
        if self.num_workers < 0:
            raise bad_value(f"{prefix}.num_workers", self.num_workers, "0 (read in the main process) or more")
        if self.min_size < 0:
            raise bad_value(
                f"{prefix}.min_size", self.min_size, "0 (keep all) or a positive number of pixels"
            )
        if self.max_aspect != 0 and not self.max_aspect >= 1:
            raise bad_value(f"{prefix}.max_aspect", self.max_aspect, "0 (no limit) or a ratio >= 1")
        if self.max_pixels <= 0:
            raise bad_value(f"{prefix}.max_pixels", self.max_pixels, "a positive number of pixels")


@dataclass
class JudgeConfig:
    """The toy judge (``data.judge``): trained on first use on the train split, cached."""

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
class LaionData(DataConfig):
    """``configs/data/laion.yaml``: webdataset shards (local: indexed; URLs: streamed)."""

    # LAION-style webdataset shards.
    name: str = "laion"
    # Training shards: a path, glob, folder, brace pattern or URLs, or a list of these. Required.
    shards: Any = None
    # Held-out shards (same forms); None = none.
    heldout_shards: Any = None
    # auto (indexed for local files, stream for URLs) | indexed | stream.
    mode: str = "auto"
    # Stream mode only: draw shards with replacement (true) or read epochs of the shard list (false).
    resampled: bool = True
    # Stream mode only: samples in the shuffle buffer of each worker.
    shuffle_buffer: int = 1000
    # Indexed mode: read each shard fully into RAM once per process.
    in_memory: bool = False
    # DataLoader worker processes per rank.
    num_workers: int = 4
    # Caption source: txt | json.
    caption: str = "txt"
    # JSON field holding the caption when caption: json.
    caption_field: str = "caption"
    # Skip images whose shorter side is below this many pixels (0 = keep all).
    min_size: int = 64
    # Skip images with long/short side ratio above this (0 = no limit).
    max_aspect: float = 3.0

    def check(self, prefix: str) -> None:
        super().check(prefix)
        schema.choice(prefix, "caption", self.caption, ["txt", "json"])
        schema.choice(prefix, "mode", self.mode, ["auto", "indexed", "stream"])
        if self.shuffle_buffer < 0:
            raise bad_value(
                f"{prefix}.shuffle_buffer", self.shuffle_buffer, "0 (no shuffling) or a number of samples"
            )


@dataclass
class CocoData(DataConfig):
    """``configs/data/coco.yaml``: COCO captions from a local folder."""

    # COCO captions (the evaluation prompt set).
    name: str = "coco"
    # COCO folder holding annotations/ and <subset><year>/. Required.
    root: str | None = None
    # COCO release: 2014 | 2017.
    year: int = 2014
    # Which COCO subset: val | train.
    subset: str = "val"
    # Number of images chosen (seeded).
    n: int = 30000
    # Seed of the choice of images and captions.
    choice_seed: int = 0
    # DataLoader worker processes per rank.
    num_workers: int = 4

    def check(self, prefix: str) -> None:
        super().check(prefix)
        schema.choice(prefix, "year", self.year, [2014, 2017])
        schema.choice(prefix, "subset", self.subset, ["val", "train"])


@dataclass
class FolderData(DataConfig):
    """``configs/data/folder.yaml``: a folder of images with sidecar .txt captions."""

    # Images with sidecar captions.
    name: str = "folder"
    # Folder of training images (searched recursively). Required.
    root: str | None = None
    # Folder of held-out images; None = the training folder in file order.
    heldout_root: str | None = None
    # One caption for every image; None = sidecar .txt files.
    instance_prompt: str | None = None
    # DataLoader worker processes per rank.
    num_workers: int = 2
    # Crop after resizing the shorter side: center | random.
    crop: str = "random"


SCHEMAS = {"toy": ToyData, "laion": LaionData, "coco": CocoData, "folder": FolderData}


def name_of(node, default=None):
    """``node.name`` (a DictConfig, dict or typed object), or ``default`` when absent/None."""
    if node is None:
        return default
    val = node.get("name", None) if hasattr(node, "get") else getattr(node, "name", None)
    return default if val is None else val


def read(node, name: str | None = None):
    """The typed object of ``node`` for source ``name`` (default: the node's ``name``); a typed
    object is returned as it is. An unknown source is ``bad_value("data.name", ...)``."""
    if is_dataclass(node) and not isinstance(node, type):
        return node
    name = name or name_of(node)
    if name not in SCHEMAS:
        raise bad_value("data.name", name, list(SCHEMAS))
    return schema.read(SCHEMAS[name], _unset_nones(node, SCHEMAS[name]), "data")


def _unset_nones(node, schema_cls):
    """A ``null`` for a key that cannot be None (``data.resolution: null``) means unset: the
    default applies, as it did before the schemas; keys that may be None keep it."""
    if node is None or not hasattr(node, "items"):
        return node
    if OmegaConf.is_config(node):
        node = OmegaConf.to_container(node, resolve=True)
    hints = typing.get_type_hints(schema_cls)
    out = {}
    for k, v in node.items():
        t = hints.get(k)
        if v is None and t is not None and type(None) not in typing.get_args(t) and t is not Any:
            continue
        if is_dataclass(t) and hasattr(v, "items"):
            v = _unset_nones(v, t)
        out[k] = v
    return out


__all__ = ["DataConfig", "ToyData", "LaionData", "CocoData", "FolderData", "JudgeConfig", "SCHEMAS", "read"]
