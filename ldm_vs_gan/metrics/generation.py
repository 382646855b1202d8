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

from ldm_vs_gan.distributed import DistInfo, gather_objects


def eval_seeds(seed: int, n: int) -> list[int]:
    """N int64 generation seeds derived from one base seed (same for every family and run, so the
    comparison uses the same noise per prompt wherever the families consume seeds the same way)."""
    rng = np.random.default_rng([int(seed), 0xE7A1])
    return [int(s) for s in rng.integers(0, 2**62, size=n, dtype=np.int64)]


@torch.no_grad()
def generate_sharded(
    family,
    captions: list[str],
    seeds: list[int],
    *,
    batch_size: int = 64,
    sampling: dict[str, Any] | None = None,
    dist: DistInfo | None = None,
) -> tuple[torch.Tensor, float]:
    """(uint8 images (N, 3, H, W) in index order on every rank, seconds per image averaged over
    ranks). ``dist`` is this process's place in the group (:func:`ldm_vs_gan.distributed.setup`);
    None: one process that generates everything."""
    n = len(captions)
    if len(seeds) != n:
        raise ValueError(f"{n} captions but {len(seeds)} seeds")
    rank, size = (dist.rank, dist.world_size) if dist is not None else (0, 1)
    mine = list(range(rank, n, size))
    local, sec_per_image = _generate_indices(family, captions, seeds, mine, batch_size, sampling or {})
    if size == 1:
        return local, sec_per_image
    # one gather carries the indices, the images and the timing of every rank
    gathered = gather_objects(dist, (mine, None if local is None else local.numpy(), sec_per_image))
    return _in_index_order(gathered, n), float(np.mean([g[2] for g in gathered]))


def _generate_indices(family, captions, seeds, idx_all, batch_size, sampling):
    """(uint8 images of the given indices, or None when there are none; seconds per image)."""
    outs, t0 = [], time.perf_counter()
    for j in range(0, len(idx_all), batch_size):
        idx = idx_all[j : j + batch_size]
        imgs = family.generate([captions[i] for i in idx], [seeds[i] for i in idx], **sampling)
        if imgs.dtype != torch.uint8:
            raise TypeError(
                f"{type(family).__name__}.generate returned {imgs.dtype}, the contract says uint8"
            )
        outs.append(imgs.cpu())
    sec_per_image = (time.perf_counter() - t0) / max(len(idx_all), 1)
    return (torch.cat(outs) if outs else None), sec_per_image


def _in_index_order(gathered: list, n: int) -> torch.Tensor:
    """Every rank's (indices, images, _) put back as one (N, ...) tensor; a lost index is an error."""
    shape = next(g[1].shape[1:] for g in gathered if g[1] is not None)
    result = torch.empty((n, *shape), dtype=torch.uint8)
    seen = torch.zeros(n, dtype=torch.bool)
    for idx, arr, _ in gathered:
        if not idx:
            continue
        result[idx] = torch.from_numpy(arr)
        seen[idx] = True
    if not bool(seen.all()):
        raise RuntimeError(f"distributed generation lost {int((~seen).sum())} of {n} images")
    return result
