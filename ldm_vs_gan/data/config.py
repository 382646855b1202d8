"""The data room's config schemas: one dataclass per file in ``configs/data/``, the single source
of the ``data`` node's defaults (field defaults = the shipped YAML values; the YAML files document
each key). :func:`read` gives the typed object of a node (a DictConfig, a plain dict, a partial
node: a missing key gets the schema default) or a one-line :class:`ConfigError` naming
``data.<key>`` (unknown key, wrong type, or a value its ``check`` refuses).
"""

import typing
from dataclasses import dataclass, is_dataclass
from typing import Any

from omegaconf import OmegaConf

from ldm_vs_gan import schema
from ldm_vs_gan.errors import bad_value


@dataclass
class DataConfig:
    """The keys every source shares: how images are decoded and loaded."""

    # Source of the data: laion | coco | folder, or a plug-in's (toy).
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
    # The shards were written by `python -m ldm_vs_gan.precompute` (latents and text features).
    precomputed: bool = False

    def check(self, prefix: str) -> None:
        super().check(prefix)
        schema.choice(prefix, "caption", self.caption, ["txt", "json"])
        if self.precomputed and (self.crop == "random" or self.hflip):
            raise bad_value(
                f"{prefix}.precomputed",
                True,
                "false with crop=random or hflip=true (one crop was precomputed)",
            )
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


BUILTIN = {"laion": LaionData, "coco": CocoData, "folder": FolderData}


def schemas() -> dict:
    """Schema of every ``data.name``: the built-in sources and the plug-ins' (ldm_vs_gan.plugins)."""
    from ldm_vs_gan import plugins

    return {**{n: plugins.find("data", n).schema for n in plugins.names("data")}, **BUILTIN}


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
    known = schemas()
    if name not in known:
        raise bad_value("data.name", name, list(known))
    return schema.read(known[name], _unset_nones(node, known[name]), "data")


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


__all__ = ["DataConfig", "LaionData", "CocoData", "FolderData", "BUILTIN", "schemas", "read"]
