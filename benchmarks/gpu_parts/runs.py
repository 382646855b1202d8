"""Commands of the real CLI for the GPU check's sub-processes, and what a finished run dir says
(images seen, throughput, the quick evaluation's numbers)."""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

# The toy world at the dry run's size (and of the torchrun part): seconds to make, judge included.
SMALL_WORLD = ["data.n_train=512", "data.n_heldout=64", "data.judge.epochs=1"]


def train_cmd(overrides: list[str]) -> list[str]:
    return [sys.executable, "-m", "ldm_vs_gan.train", *overrides]


def common(device: str, run_dir: Path) -> list[str]:
    """What the check adds to a user's command: no wandb on the GPU machine, no progress bar in
    the logs, the device named, a run dir of its own."""
    return ["logger=none", f"trainer.device={device}", "trainer.progress=false", f"run_dir={run_dir}"]


def summary(run_dir: Path) -> dict:
    """images_seen, median img/s of the logged windows, and the last quick evaluation."""
    out: dict = {}
    log = run_dir / "metrics.jsonl"
    if log.exists():
        rows = [json.loads(ln) for ln in log.read_text().splitlines() if ln.strip()]
        rows = [r for r in rows if "img_per_s" in r]
        if rows:
            out["images_seen"] = rows[-1]["images_seen"]
            out["img_per_s_median"] = round(statistics.median(float(r["img_per_s"]) for r in rows), 1)
    quick = last_quick_eval(run_dir)
    if quick is not None:
        out["quick_eval"] = quick
    return out


def last_quick_eval(run_dir: Path) -> dict | None:
    """The headline numbers of the run's last quick evaluation (``eval/fidelity``, ``eval/fid_toy``;
    the per-attribute breakdown stays in the run dir)."""
    files = sorted((run_dir / "eval").glob("quick_*.json"))
    if not files:
        return None
    q = json.loads(files[-1].read_text())
    return {
        k: v
        for k, v in q.items()
        if isinstance(v, (int, float)) and not isinstance(v, bool) and k.count("/") <= 1
    }


def cache_entries(cache: Path) -> list[str]:
    """What first use made in the cache (toy world, judge, stages), as relative folder names."""
    return sorted(
        str(p.relative_to(cache)) for sub in ("toy", "stages") for p in (cache / sub).glob("*") if p.is_dir()
    )
