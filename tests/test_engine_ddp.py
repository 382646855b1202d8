"""DDP equivalence: 2-process gloo (torchrun) with global batch B == 1 process with batch B.

The stand-in data gives rank r the r-th half of each global batch (the data contract), the
regress family's losses are per-sample means without noise, so DDP's gradient average over the
two halves equals the single process's gradient up to float summation order (allclose).
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import torch
from support import standin_data
from support.engine import REPO, make_cfg, subprocess_env, write_cfg

TORCHRUN = Path(sys.executable).with_name("torchrun")


def _nets(run_dir):
    return torch.load(Path(run_dir) / "checkpoints/last.pt", map_location="cpu", weights_only=True)


def _close(a, b):
    for part in ("networks", "ema"):
        for net, sd in a[part].items() if part == "networks" else [("ema", a["ema"]["params"])]:
            other = b[part][net] if part == "networks" else b["ema"]["params"]
            for k, t in sd.items():
                assert torch.allclose(t, other[k], rtol=1e-4, atol=1e-6), f"{part}/{net}/{k}"


def test_two_process_gloo_matches_one_process(tmp_path):
    """With and without gradient accumulation; one torchrun launch trains both configs."""
    from ldm_vs_gan.training import run

    files = []
    for acc in (1, 2):
        over = {
            "trainer.max_images": 64,
            "trainer.sample_every": 0,
            "trainer.accumulate": acc,
            "trainer.ema.decay": 0.5,
        }
        run(make_cfg(tmp_path / f"one{acc}", **over), data=standin_data)
        files.append(str(write_cfg(make_cfg(tmp_path / f"two{acc}", **over), tmp_path / f"two{acc}.yaml")))
    t0 = time.perf_counter()
    proc = subprocess.run(
        [
            str(TORCHRUN),
            "--standalone",
            "--nproc_per_node=2",
            str(REPO / "tests/test_engine_support.py"),
            *files,
        ],
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    print(f"torchrun 2x gloo, two runs: {time.perf_counter() - t0:.1f}s")
    for acc in (1, 2):
        one, two = _nets(tmp_path / f"one{acc}"), _nets(tmp_path / f"two{acc}")
        assert one["images_seen"] == two["images_seen"] == 64 and two["world_size"] == 2
        assert len(two["rng"]) == 2  # both ranks' RNG streams are saved
        _close(one, two)
    # accumulation does not change the result either (same samples, same mean)
    _close(_nets(tmp_path / "one1"), _nets(tmp_path / "one2"))
    # the networks did move (the comparison is not between two initialisations)
    init = make_cfg(tmp_path / "x")
    from hydra.utils import get_class

    from ldm_vs_gan.training.checkpoint import seed_all

    seed_all(0)
    fam = get_class(init.model._target_).from_config(init)
    assert not torch.allclose(
        fam.generator.net[0].weight, _nets(tmp_path / "one1")["networks"]["generator"]["net.0.weight"]
    )
