"""Write scikit-learn's handwritten digits (1,797 real 8x8 scans, shipped inside scikit-learn: no
download) as img2dataset-style shards (``.png`` + ``.txt`` + ``.json``) at 32 px: the captioned
data set the "Your own data" commands of the README are measured on.

    pip install scikit-learn
    python experiments/own_data_digits/make_shards.py /data/digits

writes ``/data/digits/train-00000.tar`` (1,500 samples) and ``/data/digits/heldout-00000.tar``
(297). Captions repeat by design (one per class: "a handwritten digit seven"), as class-labelled
data sets do.
"""

from __future__ import annotations

import argparse
import io
import json
import tarfile
from pathlib import Path

import numpy as np
from PIL import Image

WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
N_TRAIN = 1500


def _png(img8: np.ndarray, size: int) -> bytes:
    """An 8x8 scan (0..16, ink high) -> dark ink on white, upscaled (bicubic) to ``size``, RGB PNG."""
    gray = (255 - img8 * (255 / 16)).clip(0, 255).astype(np.uint8)
    im = Image.fromarray(gray, "L").resize((size, size), Image.BICUBIC).convert("RGB")
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return buf.getvalue()


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def write(out: Path, size: int = 32) -> dict[str, int]:
    from sklearn.datasets import load_digits

    d = load_digits()
    out.mkdir(parents=True, exist_ok=True)
    counts = {}
    for split, idx in (("train", range(N_TRAIN)), ("heldout", range(N_TRAIN, len(d.target)))):
        with tarfile.open(out / f"{split}-00000.tar", "w") as tar:
            for i in idx:
                key = f"{i:06d}"
                label = int(d.target[i])
                _add(tar, f"{key}.png", _png(d.images[i], size))
                _add(tar, f"{key}.txt", f"a handwritten digit {WORDS[label]}".encode())
                _add(tar, f"{key}.json", json.dumps({"label": label}).encode())
        counts[split] = len(idx)
    return counts


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out", type=Path, help="folder for the shards")
    ap.add_argument("--size", type=int, default=32, help="image side in pixels")
    args = ap.parse_args()
    print(write(args.out, args.size))
