"""A stand-in for ``ldm_vs_gan.data``: pass the module itself as ``run(cfg, data=standin_data)``.

It follows the data contract (docs/CONTRACTS.md "Data") exactly where the engine relies on it:
global step k holds global stream positions [k*G, (k+1)*G), rank r the r-th contiguous slice, a
pure function of (seed, position), so 2 ranks x B/2 see the samples of 1 rank x B and a resume at
``start_images_seen`` needs no replay. It is tiny (8x8 images) and needs no cache.
"""

from __future__ import annotations

import torch

from ldm_vs_gan.data.batch import Batch

RES = 8
N_TRAIN = 97  # prime: positions wrap at odd places


def _sample(index: int, split: str):
    g = torch.Generator().manual_seed(index * 2 + (split == "heldout"))
    img = torch.rand(3, RES, RES, generator=g) * 2 - 1
    return img, f"{split} sample {index}"


def build_loader(
    data_cfg, *, split, batch_size, rank=0, world_size=1, seed=0, start_images_seen=0, num_workers=None
):
    assert split == "train"

    def gen():
        pos = start_images_seen + rank * batch_size
        while True:
            idx = [(seed * 31 + (pos + i) * 7) % N_TRAIN for i in range(batch_size)]
            imgs, caps = zip(*(_sample(i, "train") for i in idx))
            skipped = {"undecodable": 1} if pos % 48 == 0 else {}
            yield Batch(torch.stack(imgs), list(caps), [str(i) for i in idx], [None] * batch_size, skipped)
            pos += batch_size * world_size

    return gen()


def heldout_batch(data_cfg, n, offset=0):
    imgs, caps = zip(*(_sample(i, "heldout") for i in range(offset, offset + n)))
    return Batch(torch.stack(imgs), list(caps), [], [None] * n, {})
