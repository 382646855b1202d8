"""Every number carries provenance: which code, how many samples, which extractor and weights,
which checkpoint and sampling settings.

An evaluation JSON is ``{"metrics": {name: value}, "provenance": {...}}``; :data:`REQUIRED` lists
the provenance fields every evaluation writes (tests check them; ``compare`` groups by them).
"""

from __future__ import annotations

import datetime
import subprocess
from importlib import metadata
from pathlib import Path

REQUIRED = (
    "implementation",  # metric code and versions (torchmetrics, torch-fidelity, ldm_vs_gan, git commit)
    "num_samples",  # N generated (and N real for the reference statistics)
    "extractor",  # name, weights_sha256, resize, dim (+ judge held-out accuracy on the toy world)
    "data",  # source, split, selection of prompts/images, resolution
    "checkpoint",  # run dir, weights file hash, images seen
    "sampling",  # sampler, steps, guidance (family defaults merged with overrides)
    "seed",  # base seed of the generation seeds
)


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "absent"


def git_commit(path: str | Path | None = None) -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=path or Path(__file__).parent,
            capture_output=True,
            text=True,
            timeout=5,
        )
        return out.stdout.strip() or None
    except Exception:  # noqa: BLE001 - provenance is best effort outside a git checkout
        return None


def implementation() -> dict:
    return {
        "metrics": "torchmetrics FrechetInceptionDistance / KernelInceptionDistance / InceptionScore "
        "on precomputed features (ldm_vs_gan.metrics.fid)",
        "torchmetrics": _version("torchmetrics"),
        "torch-fidelity": _version("torch-fidelity"),
        "torch": _version("torch"),
        "open_clip_torch": _version("open_clip_torch"),
        "ldm_vs_gan": _version("ldm_vs_gan"),
        "git_commit": git_commit(),
    }


def build(
    *,
    num_samples: int,
    extractor: dict | None,
    data: dict,
    checkpoint: dict,
    sampling: dict,
    seed: int,
    **extra,
) -> dict:
    """The provenance dict of one evaluation; ``extra`` adds e.g. world size and timings."""
    out = {
        "implementation": implementation(),
        "num_samples": int(num_samples),
        "extractor": extractor,
        "data": data,
        "checkpoint": checkpoint,
        "sampling": sampling,
        "seed": int(seed),
        "created_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    out.update(extra)
    return out


def missing(prov: dict) -> list[str]:
    """Required fields absent from ``prov`` (empty when complete)."""
    return [k for k in REQUIRED if k not in prov]
