"""Part 4: the toy pipeline end to end on the device, as ``make train`` runs it on a fresh machine:
``python -m ldm_vs_gan.train model=ldm`` (the toy world, the toy CLIP and VAE stages, the judge,
then the LDM with its sample grids, quick evaluation and checkpoints), then ``model=galip`` on
the same world and CLIP; each a sub-process with its wall time, in the check's fresh cache. The
only additions to the user's command: the device, ``logger=none`` (no wandb there), no progress
bar, and more processes to render the world (``data.gen_workers``, which does not change its
bytes). The dry run trains the tiny experiments on a small world instead.
"""

from __future__ import annotations

import os
from pathlib import Path

from gpu_parts.runner import run_logged
from gpu_parts.runs import SMALL_WORLD, cache_entries, common, summary, train_cmd


def plans(ctx) -> dict[str, list[str]]:
    if ctx.dry_run:
        return {
            "ldm": ["model=ldm", "experiment=ldm_tiny", *SMALL_WORLD],
            "galip": ["model=galip", "experiment=galip_tiny", *SMALL_WORLD],
        }
    workers = f"data.gen_workers={min(os.cpu_count() or 2, 8)}"
    return {"ldm": ["model=ldm", workers], "galip": ["model=galip", workers]}


def run(ctx, rec) -> None:
    cache = os.environ.get("LDM_VS_GAN_CACHE")
    failed = []
    for name, overrides in plans(ctx).items():
        if ctx.left() < 30:  # not even a start-up: say so instead of a run killed at once
            rec[name] = {"status": "skipped", "reason": f"{ctx.left():.0f} s of the part's box left"}
            failed.append(f"{name} skipped")
            continue
        run_dir = ctx.work / "pipeline" / name
        cmd = train_cmd([*overrides, *common(ctx.device, run_dir)])
        got = run_logged(cmd, ctx.logs / f"pipeline_{name}.log", ctx.left() - 5, ctx.repo)
        status = "ok" if got["returncode"] == 0 else "timeout" if got["returncode"] is None else "failed"
        entry = {"status": status, **got, "command": " ".join(cmd[1:]), **summary(run_dir)}
        if cache:
            entry["cache_after"] = cache_entries(Path(cache))
        rec[name] = entry
        if status != "ok":
            failed.append(f"{name} {status} (log: pipeline_{name}.log)")
    if failed:
        raise AssertionError("; ".join(failed))
