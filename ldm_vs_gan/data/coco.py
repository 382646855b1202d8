"""COCO captions (``data=coco``): a local COCO-2014 or 2017 folder
(``annotations/captions_val2014.json`` + ``val2014/``), the evaluation prompt set of the papers
(LDM, GALIP: "COCO FID-30k"). Nothing is downloaded.

``heldout``: a seeded choice of ``n`` images (30k by default; all when there are fewer), each with
one caption drawn at random from its five, in a fixed order: the evaluation prompts and the
matching real images. ``train``: every (image, caption) pair of the chosen subset.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ldm_vs_gan.data import config
from ldm_vs_gan.data.folder import FileSource
from ldm_vs_gan.errors import UserError


def coco_pairs(root: Path, year: int, subset: str) -> tuple[dict[int, Path], dict[int, list[str]]]:
    ann = root / "annotations" / f"captions_{subset}{year}.json"
    img_dir = root / f"{subset}{year}"
    if not ann.is_file() or not img_dir.is_dir():
        raise UserError(
            f"data.root={str(root)!r}: COCO not found (expected {ann} and {img_dir}/); "
            f"set data.root to your COCO folder"
        )
    meta = json.loads(ann.read_text())
    files = {im["id"]: img_dir / im["file_name"] for im in meta["images"]}
    caps: dict[int, list[str]] = {}
    for a in meta["annotations"]:
        caps.setdefault(a["image_id"], []).append(a["caption"])
    return files, caps


class CocoSource(FileSource):
    @staticmethod
    def from_config(data_cfg, split: str) -> CocoSource:
        c = config.read(data_cfg, "coco")
        root = c.root
        if not root:
            raise UserError(
                "data.root is not set: point it at a COCO folder (annotations/captions_val2014.json + val2014/)"
            )
        files, caps = coco_pairs(Path(os.path.expanduser(str(root))), c.year, c.subset)
        return CocoSource.choose(files, caps, c.n, c.choice_seed, split)

    @staticmethod
    def choose(
        files: dict[int, Path], caps: dict[int, list[str]], n: int, seed: int, split: str
    ) -> CocoSource:
        ids = sorted(i for i in files if caps.get(i))
        rng = np.random.default_rng([seed, 0xC0C0])
        chosen = [ids[j] for j in rng.permutation(len(ids))[: min(n, len(ids))]]
        if split == "heldout":  # one random caption per image
            items = [(f"{i:012d}", files[i], sorted(caps[i])[rng.integers(len(caps[i]))]) for i in chosen]
        else:
            items = [
                (f"{i:012d}_{k}", files[i], c) for i in sorted(chosen) for k, c in enumerate(sorted(caps[i]))
            ]
        return CocoSource(items)


@dataclass
class EvalSet:
    """The COCO evaluation prompt set: ``captions`` (one per chosen image), ``images()`` -> the
    matching real images as uint8 (N, 3, R, R) (loaded on call), ``keys`` (image ids)."""

    captions: list[str]
    keys: list[str]
    resolution: int
    split: str
    root: Path
    source: CocoSource

    def images(self) -> torch.Tensor:
        from ldm_vs_gan.data.decode import DecodeOptions, Skip, decode_sample

        opts = DecodeOptions(resolution=self.resolution)
        out = []
        for i in range(len(self.source)):
            try:
                out.append(decode_sample(self.source.read(i), opts)["image"])
            except Skip as e:
                raise UserError(
                    f"COCO image {self.keys[i]} in {self.root} cannot be used ({e.args[0]})"
                ) from None
        return (
            torch.stack(out)
            if out
            else torch.zeros(0, 3, self.resolution, self.resolution, dtype=torch.uint8)
        )


def eval_set(
    n: int = 30000,
    seed: int = 0,
    resolution: int = 256,
    root: str | None = None,
    year: int = 2014,
    subset: str = "val",
) -> EvalSet:
    """The papers' "COCO FID-30k" prompt set: a seeded choice of ``n`` images of COCO
    ``<subset><year>``, one random caption each. ``root``: the COCO folder, default
    ``$LDM_VS_GAN_COCO``; a missing folder is one clear error, at once."""
    root = root or os.environ.get("LDM_VS_GAN_COCO")
    if not root:
        raise UserError(
            "COCO folder not set: pass data.root (or set $LDM_VS_GAN_COCO) to a folder with "
            f"annotations/captions_{subset}{year}.json and {subset}{year}/"
        )
    src = CocoSource.from_config(
        {"root": root, "year": year, "subset": subset, "n": n, "choice_seed": seed}, "heldout"
    )
    return EvalSet(
        [c for _, _, c in src.items],
        [k for k, _, _ in src.items],
        int(resolution),
        f"{subset}{year}",
        Path(os.path.expanduser(str(root))),
        src,
    )
