"""A small captioned data set that is not the toy world, written by the tests themselves as
img2dataset-style shards: other image sizes (non-square, 40x28 and 28x36), captions that repeat
(four class captions), `.json` sidecars without toy attributes, a tiny held-out split."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

CLASSES = ("a red stripe", "a blue dot", "a green ring", "a yellow bar")
COLORS = ((210, 40, 40), (40, 70, 220), (40, 180, 60), (230, 200, 30))


def _image(i: int, rng: np.random.Generator) -> bytes:
    """Class ``i % 4`` drawn at a random place on a light background, in one of two sizes."""
    c = i % len(CLASSES)
    w, h = (40, 28) if i % 3 else (28, 36)
    im = Image.new("RGB", (w, h), tuple(int(v) for v in rng.integers(200, 255, 3)))
    d = ImageDraw.Draw(im)
    x, y = int(rng.integers(2, w - 14)), int(rng.integers(2, h - 14))
    if c == 0:
        d.rectangle([x, 0, x + 5, h], fill=COLORS[c])
    elif c == 1:
        d.ellipse([x, y, x + 9, y + 9], fill=COLORS[c])
    elif c == 2:
        d.ellipse([x, y, x + 12, y + 12], outline=COLORS[c], width=3)
    else:
        d.rectangle([0, y, w, y + 5], fill=COLORS[c])
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return buf.getvalue()


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def write_own_data(root: Path, n_train: int = 192, n_heldout: int = 24, seed: int = 0) -> dict[str, str]:
    """Writes ``train-0000{0,1}.tar`` and ``heldout-00000.tar`` under ``root``; returns the
    ``data.*`` overrides that point a run at them (shard pattern in brace form, as users give it)."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    splits = {"train-00000": range(0, n_train // 2), "train-00001": range(n_train // 2, n_train)}
    splits["heldout-00000"] = range(n_train, n_train + n_heldout)
    for name, idx in splits.items():
        with tarfile.open(root / f"{name}.tar", "w") as tar:
            for i in idx:
                _add(tar, f"{i:06d}.png", _image(i, rng))
                _add(tar, f"{i:06d}.txt", CLASSES[i % len(CLASSES)].encode())
                _add(tar, f"{i:06d}.json", json.dumps({"source": "tests", "index": i}).encode())
    return {
        "shards": f"{root}/train-{{00000..00001}}.tar",
        "heldout_shards": str(root / "heldout-00000.tar"),
    }
