"""Shared helpers of the promise tests (no tests here): run the real CLI, compare checkpoints.

The promise tests (``test_promise_*.py``) run ``python -m ldm_vs_gan.train`` as a user would, with
the real data loader, the real quick evaluation and the real checkpoint files; nothing stands in
for the part whose promise is tested.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import torch
from support.engine import REPO, subprocess_env

TORCHRUN = Path(sys.executable).with_name("torchrun")
LDM_TINY = ["model=ldm", "experiment=ldm_tiny", "logger=none"]
GALIP_TINY = ["model=galip", "experiment=galip_tiny", "logger=none"]


def env(**extra) -> dict:
    e = dict(subprocess_env(), PYTHONUNBUFFERED="1")
    e.update({k: str(v) for k, v in extra.items()})
    return e


def train_cmd(args: list[str]) -> list[str]:
    return [sys.executable, "-m", "ldm_vs_gan.train", *args]


def train(args: list[str], timeout: float = 300, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(
        train_cmd(args), cwd=REPO, env=env(), capture_output=True, text=True, timeout=timeout, **kw
    )


def load(path) -> dict:
    return torch.load(Path(path), map_location="cpu", weights_only=True)


def leaves(obj, where: str = ""):
    """(path, value) for every leaf of a nested checkpoint (tensors and plain values)."""
    if isinstance(obj, dict):
        for k in sorted(obj, key=str):
            yield from leaves(obj[k], f"{where}/{k}")
    elif isinstance(obj, (list, tuple)):
        for i, x in enumerate(obj):
            yield from leaves(x, f"{where}[{i}]")
    else:
        yield where, obj


def compare_states(
    a: dict, b: dict, parts=("networks", "optimizers", "scalers", "ema", "rng")
) -> tuple[int, list[str]]:
    """Bitwise comparison of two training states (same computation): (tensors compared, differences)."""
    la = dict(leaves({p: a.get(p) for p in parts}))
    lb = dict(leaves({p: b.get(p) for p in parts}))
    diffs = sorted(set(la) ^ set(lb))
    n = 0
    for k in sorted(set(la) & set(lb)):
        x, y = la[k], lb[k]
        if torch.is_tensor(x):
            n += 1
            if not (torch.is_tensor(y) and x.dtype == y.dtype and x.shape == y.shape and torch.equal(x, y)):
                diffs.append(k)
        elif x != y:
            diffs.append(k)
    return n, diffs
