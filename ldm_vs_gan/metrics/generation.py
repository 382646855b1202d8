"""Generation for evaluation, sharded across ranks and gathered.

Sample i is (captions[i], seeds[i]); rank r generates the indices i = r, r + W, r + 2W, ... in
batches, then every rank's (indices, images) are gathered and put back in index order, so the
result is exactly N images, each once, identical to a single-process run (``Family.generate``
promises image i depends only on (caption i, seed i, sampling)).

Known limit: the gather holds all N uint8 images in memory on every rank (fine for the toy world
and for 5k-30k images at 256 px on one node: 30k x 256^2 x 3 B = 5.9 GB). Larger sets should
gather features instead of images.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch
import torch.distributed as dist


def eval_seeds(seed: int, n: int) -> list[int]:
    """N int64 generation seeds derived from one base seed (same for every family and run, so the
    comparison uses the same noise per prompt wherever the families consume seeds the same way)."""
    rng = np.random.default_rng([int(seed), 0xE7A1])
    return [int(s) for s in rng.integers(0, 2**62, size=n, dtype=np.int64)]


def world() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


@torch.no_grad()
def generate_sharded(
    family,
    captions: list[str],
    seeds: list[int],
    *,
    batch_size: int = 64,
    sampling: dict[str, Any] | None = None,
) -> tuple[torch.Tensor, float]:
    """(uint8 images (N, 3, H, W) in index order on every rank, seconds per image on this rank)."""
    n = len(captions)
    if len(seeds) != n:
        raise ValueError(f"{n} captions but {len(seeds)} seeds")
    rank, size = world()
    mine = list(range(rank, n, size))
    outs, t0 = [], time.perf_counter()
    for j in range(0, len(mine), batch_size):
        idx = mine[j : j + batch_size]
        imgs = family.generate([captions[i] for i in idx], [seeds[i] for i in idx], **(sampling or {}))
        if imgs.dtype != torch.uint8:
            raise TypeError(
                f"{type(family).__name__}.generate returned {imgs.dtype}, the contract says uint8"
            )
        outs.append(imgs.cpu())
    sec_per_image = (time.perf_counter() - t0) / max(len(mine), 1)
    local = torch.cat(outs) if outs else None
    if size == 1:
        return local, sec_per_image
    gathered: list = [None] * size
    dist.all_gather_object(gathered, (mine, None if local is None else local.numpy()))
    shape = next(g[1].shape[1:] for g in gathered if g[1] is not None)
    result = torch.empty((n, *shape), dtype=torch.uint8)
    seen = torch.zeros(n, dtype=torch.bool)
    for idx, arr in gathered:
        if not idx:
            continue
        t = torch.from_numpy(arr)
        result[idx] = t
        seen[idx] = True
    if not bool(seen.all()):
        raise RuntimeError(f"distributed generation lost {int((~seen).sum())} of {n} images")
    lat = [None] * size
    dist.all_gather_object(lat, sec_per_image)
    return result, float(np.mean([x for x in lat if x is not None]))
