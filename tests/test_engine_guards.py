"""Guards: non-finite steps, SIGTERM, SIGKILL during a checkpoint write, impossible configs,
and the fp16/bf16 code paths on CPU."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from support import standin_data
from support.engine import REPO, make_cfg, subprocess_env, write_cfg


def _records(run_dir):
    return [json.loads(ln) for ln in (Path(run_dir) / "metrics.jsonl").read_text().splitlines()]


def _load(path):
    return torch.load(path, map_location="cpu", weights_only=True)


def test_nonfinite_loss_stops_and_last_checkpoint_loads(tmp_path):
    from ldm_vs_gan.training import run
    from ldm_vs_gan.training.guards import NonFiniteError

    with pytest.raises(NonFiniteError) as info:
        run(make_cfg(tmp_path / "r", **{"model.nan_at_images": 80}), data=standin_data)
    msg = str(info.value)
    assert "\n" not in msg and "non-finite loss in phase 'generator' at images_seen=80" in msg
    assert "images_seen=64) is intact" in msg and "trainer.on_nonfinite=skip" in msg
    state = _load(tmp_path / "r/checkpoints/last.pt")
    assert state["images_seen"] == 64
    assert all(torch.isfinite(t).all() for t in state["networks"]["generator"].values())


def test_nonfinite_skip_counts_and_keeps_weights(tmp_path):
    from ldm_vs_gan.training import run

    rd = run(
        make_cfg(tmp_path / "r", **{"model.nan_at_images": 80, "trainer.on_nonfinite": "skip"}),
        data=standin_data,
    )
    state = _load(rd / "checkpoints/last.pt")
    assert state["images_seen"] == 128 and state["nonfinite_skipped"] == 3  # steps at 80, 96, 112
    assert all(torch.isfinite(t).all() for t in state["networks"]["generator"].values())
    assert _records(rd)[-1]["nonfinite_skipped"] == 3
    # skipped steps leave the networks alone: equal to a run that stopped after the last good step
    ref = run(make_cfg(tmp_path / "ref", **{"trainer.max_images": 80}), data=standin_data)
    good = _load(ref / "checkpoints/last.pt")
    for name, sd in good["networks"].items():
        for k, t in sd.items():
            assert torch.equal(t, state["networks"][name][k]), f"{name}/{k}"


def test_impossible_batch_fails_before_any_work(tmp_path):
    from ldm_vs_gan.errors import ConfigError
    from ldm_vs_gan.training import run

    with pytest.raises(ConfigError, match=r"trainer.batch_size=16 must be divisible by .*=3"):
        run(make_cfg(tmp_path / "r", **{"trainer.accumulate": 3}), data=standin_data)
    assert not (tmp_path / "r").exists()
    with pytest.raises(
        ConfigError, match="trainer.on_nonfinite='ignore' is not allowed; choose one of: stop, skip"
    ):
        run(make_cfg(tmp_path / "r", **{"trainer.on_nonfinite": "ignore"}), data=standin_data)


@pytest.mark.parametrize("precision", ["fp16", "bf16"])
def test_reduced_precision_paths_run_on_cpu(tmp_path, precision):
    from ldm_vs_gan.training import run

    rd = run(
        make_cfg(
            tmp_path / precision,
            **{"trainer.precision": precision, "trainer.max_images": 32, "trainer.sample_every": 0},
        ),
        data=standin_data,
    )
    recs = _records(rd)
    assert [r["images_seen"] for r in recs] == [16, 32]
    assert all(isinstance(r["generator/loss"], float) and r["generator/loss"] < 10 for r in recs)
    assert ("grad_scale/generator" in recs[-1]) == (precision == "fp16")
    state = _load(rd / "checkpoints/last.pt")
    assert bool(state["scalers"]) == (precision == "fp16")


def test_sigterm_writes_checkpoint_and_exits_resumable(tmp_path):
    cfg = make_cfg(
        tmp_path / "r", **{"trainer.max_images": 10**9, "trainer.ckpt_every": 0, "trainer.sample_every": 0}
    )
    proc = subprocess.Popen(
        [
            sys.executable,
            str(REPO / "tests/test_engine_support.py"),
            str(write_cfg(cfg, tmp_path / "c.yaml")),
        ],
        env=subprocess_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    metrics = tmp_path / "r/metrics.jsonl"
    deadline = time.time() + 180
    while time.time() < deadline and proc.poll() is None:
        if metrics.exists() and len(metrics.read_text().splitlines()) >= 3:
            break
        time.sleep(0.2)
    assert proc.poll() is None, proc.communicate()[1][-2000:]
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 75, err[-2000:]  # "stopped early, resumable", not "done"
    assert "SIGTERM: writing a checkpoint" in err
    state = _load(tmp_path / "r/checkpoints/last.pt")
    assert state["images_seen"] >= 48
    assert _records(tmp_path / "r")[-1]["images_seen"] <= state["images_seen"]


_WRITER = r"""
import os, sys, time, torch
from pathlib import Path
from ldm_vs_gan.training import checkpoint as ckpt
d, mode = Path(sys.argv[1]), sys.argv[2]
if mode == "stall":  # stop inside the write: temp file complete, not yet renamed
    def stall(fd):
        (d / "writing").touch(); time.sleep(60)
    ckpt.os.fsync = stall
    ckpt.save_with_copies({"v": torch.full((1 << 20,), 2.0)}, d, 2, keep=0, periodic=False)
else:  # write new versions as fast as possible until killed
    i = 1
    while True:
        i += 1
        ckpt.save_with_copies({"v": torch.full((1 << 20,), float(i)), "i": i}, d, i, keep=2, periodic=True)
        (d / "started").touch()
"""


def test_sigkill_during_checkpoint_write_never_leaves_unreadable_last(tmp_path):
    from ldm_vs_gan.training import checkpoint as ckpt

    d = tmp_path / "checkpoints"
    ckpt.save_with_copies({"v": torch.full((1 << 20,), 1.0), "i": 1}, d, 1, keep=0, periodic=False)
    # 1) killed at a known point inside the write: the old version survives intact
    p = subprocess.Popen([sys.executable, "-c", _WRITER, str(d), "stall"], env=subprocess_env())
    deadline = time.time() + 120
    while not (d / "writing").exists() and time.time() < deadline:
        time.sleep(0.05)
    assert (d / "writing").exists()
    p.kill()
    p.wait()
    state = torch.load(d / "last.pt", weights_only=True)
    assert torch.equal(state["v"], torch.full((1 << 20,), 1.0))
    assert list(d.glob(".last.pt.tmp*"))  # the torn temp file is there, ignored ...
    ckpt.save_with_copies({"v": torch.zeros(1)}, d, 3, keep=0, periodic=False)
    assert not list(d.glob(".*.tmp*"))  # ... and cleaned up by the next write


@pytest.mark.slow
def test_sigkill_at_arbitrary_moments_of_continuous_writes(tmp_path):
    """Killed at arbitrary moments while writing continuously: always a whole version."""
    from ldm_vs_gan.training import checkpoint as ckpt

    d = tmp_path / "checkpoints"
    ckpt.save_with_copies({"v": torch.full((1 << 20,), 1.0), "i": 1}, d, 1, keep=0, periodic=False)
    for delay in (0.3, 0.77, 1.3):
        (d / "started").unlink(missing_ok=True)
        p = subprocess.Popen([sys.executable, "-c", _WRITER, str(d), "loop"], env=subprocess_env())
        deadline = time.time() + 120
        while not (d / "started").exists() and time.time() < deadline:
            time.sleep(0.02)
        time.sleep(delay)
        p.kill()
        p.wait()
        for f in [d / "last.pt", *d.glob("images_*.pt")]:
            s = torch.load(f, weights_only=True)
            assert torch.equal(s["v"], torch.full((1 << 20,), float(s["i"])))
