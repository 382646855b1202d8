"""Multi-process training as a user launches it: ``torchrun --nproc_per_node=2`` (gloo on CPU) of a
tiny LDM and a tiny GALIP on the toy world, with the quick evaluation, the sample grids and the
checkpoints on their default intervals (trainer=smoke), to the end."""

from __future__ import annotations

import json
import subprocess
import time

import pytest
from promise_support import GALIP_TINY, LDM_TINY, REPO, TORCHRUN, env, load


@pytest.mark.parametrize("family", ["ldm", "galip"])
def test_two_rank_torchrun_with_quick_evaluation_finishes(tmp_path, family):
    rd = tmp_path / "run"
    args = LDM_TINY if family == "ldm" else GALIP_TINY
    t0 = time.perf_counter()
    proc = subprocess.run(
        [
            str(TORCHRUN),
            "--standalone",
            "--nproc_per_node=2",
            "-m",
            "ldm_vs_gan.train",
            *args,
            f"run_dir={rd}",
        ],
        cwd=REPO,
        env=env(),
        capture_output=True,
        text=True,
        timeout=400,  # a hang (a collective one rank never reaches) fails here, not after 30 min
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    print(f"torchrun 2 ranks, {family}: {time.perf_counter() - t0:.1f}s")
    state = load(rd / "checkpoints/last.pt")
    assert state["images_seen"] == 128 and state["world_size"] == 2 and len(state["rng"]) == 2
    assert sorted(p.name for p in (rd / "samples").glob("*.png")) == ["000000000064.png", "000000000128.png"]
    quick = json.loads((rd / "eval/quick_000000000128.json").read_text())
    assert 0.0 <= quick["eval/fidelity"] <= 1.0 and quick["eval/fid_toy"] > 0
    assert (rd / "weights/manifest.json").exists()
