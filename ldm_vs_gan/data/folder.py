"""Image folders (``data=folder``): a folder of images with captions from sidecar ``.txt`` files
(``cat.jpg`` + ``cat.txt``) or one fixed ``instance_prompt`` for every image (fine-tuning on a
small custom set, DreamBooth-style). Read through the same indexed loader as shards: a source is
anything with ``len()`` and ``read(i) -> {"__key__", ext: bytes}``.
"""

from __future__ import annotations

import os
from pathlib import Path

from ldm_vs_gan.data import config
from ldm_vs_gan.data.decode import IMAGE_EXTS
from ldm_vs_gan.errors import UserError

SUFFIXES = tuple("." + e for e in IMAGE_EXTS)


class FileSource:
    """Random access to (image file, caption) pairs: ``caption`` is a str, a path to a sidecar
    text file, or None (then the sample has no caption and is skipped as ``no_caption``)."""

    def __init__(self, items: list[tuple[str, Path, str | Path | None]]):
        self.items = items  # (key, image path, caption)
        self.paths = [str(p) for _, p, _ in items[:3]]

    def __len__(self) -> int:
        return len(self.items)

    def read(self, i: int) -> dict:
        key, path, caption = self.items[i]
        ext = path.suffix.lower().lstrip(".")
        out = {"__key__": key, "__shard__": str(path), "jpg" if ext == "jpeg" else ext: path.read_bytes()}
        if isinstance(caption, Path):
            out["txt"] = caption.read_bytes()
        elif caption is not None:
            out["txt"] = caption.encode("utf-8")
        return out


def list_images(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.suffix.lower() in SUFFIXES and p.is_file())


class FolderSource(FileSource):
    @staticmethod
    def from_config(data_cfg, split: str) -> FolderSource:
        c = config.read(data_cfg, "folder")
        key = "root" if split == "train" else "heldout_root"
        root = getattr(c, key) or (c.root if split == "heldout" else None)
        if not root or not os.path.isdir(os.path.expanduser(str(root))):
            raise UserError(
                f"data.{key}={root!r}: not a folder; set it to a folder of images (+ sidecar .txt captions)"
            )
        return FolderSource.scan(Path(os.path.expanduser(str(root))), c.instance_prompt)

    @staticmethod
    def scan(root: Path, instance_prompt: str | None = None) -> FolderSource:
        images = list_images(root)
        if not images:
            raise UserError(f"data.root={str(root)!r}: no images ({', '.join(SUFFIXES)}) in it")
        items = []
        for p in images:
            side = p.with_suffix(".txt")
            caption = instance_prompt if instance_prompt else (side if side.exists() else None)
            items.append((str(p.relative_to(root).with_suffix("")), p, caption))
        return FolderSource(items)
