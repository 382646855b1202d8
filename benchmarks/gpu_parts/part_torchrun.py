"""Part 6: a one-process ``torchrun`` with the NCCL backend through the real loop: the tiny LDM
(``experiment=ldm_tiny``: trainer=smoke, 128 images, sample grids, quick evaluation at the end,
checkpoints) on a small toy world, launched as ``torchrun --standalone --nproc_per_node=1``
through gpu_parts/ddp_train.py, which joins the group with NCCL and checks a collective and a
DDP step before handing over to ``python -m ldm_vs_gan.train``.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import torch

from gpu_parts.runner import run_logged
from gpu_parts.runs import SMALL_WORLD, common, last_quick_eval

SCRIPT = Path(__file__).with_name("ddp_train.py")


def verify(run_dir: Path) -> dict:
    """What the run left: the last checkpoint (one rank's RNG state), the quick evaluation, grids."""
    state = torch.load(run_dir / "checkpoints/last.pt", map_location="cpu", weights_only=True)
    out = {
        "images_seen": state["images_seen"],
        "checkpoint_world_size": state["world_size"],
        "quick_eval": last_quick_eval(run_dir),
        "sample_grids": len(list((run_dir / "samples").glob("*.png"))),
        "weights_manifest": (run_dir / "weights/manifest.json").exists(),
    }
    if not (
        state["images_seen"] == 128 and out["quick_eval"] and out["sample_grids"] and out["weights_manifest"]
    ):
        raise AssertionError(f"the torchrun run is incomplete: {out}")
    return out


def run(ctx, rec) -> None:
    run_dir = ctx.work / "torchrun" / "ldm-tiny"
    report = ctx.work / "torchrun_report.json"
    overrides = ["model=ldm", "experiment=ldm_tiny", *SMALL_WORLD, *common(ctx.device, run_dir)]
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=1"]
    cmd = [*launcher, str(SCRIPT), *overrides]
    env = dict(os.environ, GPU_CHECK_DEVICE=ctx.device, GPU_CHECK_REPORT=str(report))
    got = run_logged(cmd, ctx.logs / "torchrun.log", ctx.left() - 5, ctx.repo, env)
    rec.update({"command": " ".join(cmd[1:]), "torchrun": got})
    if report.exists():
        rec["group"] = json.loads(report.read_text())
    if got["returncode"] != 0:
        raise AssertionError(f"torchrun exited with {got['returncode']} (log: torchrun.log)")
    group = rec["group"]
    expected = "nccl" if ctx.device == "cuda" else "gloo"
    if not (group["backend"] == expected and group["all_reduce_ok"] and group["ddp_step_ok"]):
        raise AssertionError(f"process group check failed: {group}")
    rec["run"] = verify(run_dir)
