"""Real-image features cached on disk, keyed by what made them.

Key: data source, split, N, resolution, the selection (e.g. COCO caption seed), and the extractor
(name, weights SHA-256, resize). A second evaluation with the same key reads the file and computes
no real features; change N or the extractor and the key (hence the file) changes.

File: ``<cache>/ref_stats/<key-hash>.npz`` with ``features`` (N, D) float32 (for KID and
diversity), ``sum`` (D,) and ``cov_sum`` (D, D) float64 (for FID, exact running sums) and the key
as JSON (readable provenance). Written atomically (tmp file + rename) so concurrent ranks or runs
never read half a file.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ldm_vs_gan.paths import cache_dir, params_key


@dataclass
class RealStats:
    features: np.ndarray  # (N, D) float32
    sum: np.ndarray  # (D,) float64
    cov_sum: np.ndarray  # (D, D) float64
    n: int
    key: dict
    path: Path
    hit: bool  # True when read from the cache (no real feature computed)


def stats_key(
    *, data: str, split: str, n: int, resolution: int, extractor, selection: str | None = None
) -> dict:
    """The cache key; ``extractor`` is a :class:`~ldm_vs_gan.metrics.features.FeatureExtractor`."""
    return {
        "data": data,
        "split": split,
        "n": int(n),
        "resolution": int(resolution),
        "selection": selection,
        "extractor": extractor.name,
        "extractor_sha256": extractor.sha256,
        "resize": extractor.resize,
        "version": 1,
    }


def cache_path(key: dict, root: str | os.PathLike | None = None) -> Path:
    return cache_dir("ref_stats", root=root) / f"{params_key(key, 20)}.npz"


def real_stats(
    key: dict,
    compute_features: Callable[[], torch.Tensor | np.ndarray],
    root: str | os.PathLike | None = None,
) -> RealStats:
    """Cached statistics for ``key``; ``compute_features()`` runs only on a miss and returns (N, D)."""
    path = cache_path(key, root)
    if path.is_file():
        with np.load(path, allow_pickle=False) as z:
            stored = json.loads(str(z["key"]))
            if stored == key:  # guards against a (vanishingly unlikely) hash collision
                return RealStats(z["features"], z["sum"], z["cov_sum"], int(z["n"]), key, path, True)
    feats = compute_features()
    f64 = torch.as_tensor(np.asarray(feats), dtype=torch.float64)
    if len(f64) != key["n"]:
        raise ValueError(f"real feature count {len(f64)} != key n={key['n']} (not enough real images?)")
    s, cov = f64.sum(0).numpy(), (f64.T @ f64).numpy()
    tmp = path.with_suffix(f".{os.getpid()}.tmp.npz")
    np.savez(
        tmp,
        features=f64.float().numpy(),
        sum=s,
        cov_sum=cov,
        n=np.int64(len(f64)),
        key=np.array(json.dumps(key, sort_keys=True)),
    )
    os.replace(tmp, path)
    return RealStats(f64.float().numpy(), s, cov, len(f64), key, path, False)
