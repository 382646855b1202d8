"""``python -m ldm_vs_gan.train`` as a user runs it (subprocesses, the real toy world, tiny)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parent.parent
TINY = [
    "model=regress",
    "trainer=smoke",
    "logger=none",
    "data.n_train=256",
    "data.n_heldout=32",
    "trainer.eval_every=0",
]


def _train(args, cwd, **env):
    e = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", WANDB_MODE="offline", **env)
    return subprocess.run(
        [sys.executable, "-m", "ldm_vs_gan.train", *args],
        cwd=cwd,
        env=e,
        capture_output=True,
        text=True,
        timeout=600,
    )


def _one_line_error(proc, start):
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert len(lines) == 1 and lines[0].startswith(start), proc.stderr


def test_cfg_job_prints_the_composed_config(tmp_path):
    proc = _train(["--cfg", "job", "model=regress", "trainer=smoke"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "_target_: ldm_vs_gan.training.regress.RegressFamily" in proc.stdout
    assert "max_images: 128" in proc.stdout and "run_dir: runs/${model.name}-${data.name}" in proc.stdout
    assert not list(tmp_path.iterdir())  # printing writes nothing


def test_unknown_option_key_and_bad_value_are_one_line_errors(tmp_path):
    models = sorted(p.stem for p in (REPO / "configs/model").glob("*.yaml"))
    _one_line_error(
        _train(["model=nope"], cwd=tmp_path),
        f"error: model='nope' is not allowed; choose one of: {', '.join(models)}",
    )
    _one_line_error(
        _train(["model=regress", "trainer.nope=1"], cwd=tmp_path), "error: Could not override 'trainer.nope'"
    )
    _one_line_error(
        _train(["model=regress", "trainer.precision=fp8", f"run_dir={tmp_path / 'r'}"], cwd=tmp_path),
        "error: trainer.precision='fp8' is not allowed; choose one of: auto, fp32, bf16, fp16",
    )


def test_train_end_to_end_and_nothing_lands_in_cwd(tmp_path):
    cwd, rd = tmp_path / "cwd", tmp_path / "run"
    cwd.mkdir()
    proc = _train(
        [*TINY, f"run_dir={rd}", "trainer.max_images=32"], cwd=cwd, LDM_VS_GAN_CACHE=str(tmp_path / "cache")
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert not list(cwd.iterdir()), list(cwd.iterdir())
    # the trainer writes the resolved config once the run is accepted; Hydra writes nothing there
    assert (rd / "config.yaml").exists() and not (rd / ".hydra").exists()
    state = torch.load(rd / "checkpoints/last.pt", weights_only=True)
    assert state["images_seen"] == 32


@pytest.mark.slow
def test_two_sweeps_in_the_same_second_get_their_own_folders(tmp_path):
    runs = tmp_path / "runs"
    env = dict(
        os.environ,
        OMP_NUM_THREADS="1",
        HF_HUB_OFFLINE="1",
        WANDB_MODE="offline",
        LDM_VS_GAN_RUNS=str(runs),
        LDM_VS_GAN_CACHE=str(tmp_path / "cache"),
    )
    args = [sys.executable, "-m", "ldm_vs_gan.train", "-m", *TINY, "trainer.max_images=16", "seed=0,1"]
    procs = [
        subprocess.Popen(
            args, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    for p in procs:
        _, err = p.communicate(timeout=600)
        assert p.returncode == 0, err[-3000:]
    sweeps = sorted((runs / "multirun").iterdir())
    assert len(sweeps) == 2
    for sweep in sweeps:
        for job in ("0", "1"):  # each job trained in its own folder
            state = torch.load(sweep / job / "checkpoints/last.pt", weights_only=True)
            assert state["images_seen"] == 16
            assert f"seed: {job}" in (sweep / job / "config.yaml").read_text()
