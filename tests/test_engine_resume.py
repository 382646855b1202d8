"""Exact resume, init_from, load_run and the run directory's layout (CPU, fp32, stand-in data)."""

from __future__ import annotations

import json
import time

import pytest
import torch
from support import standin_data
from support.engine import make_cfg


def _load(path):
    return torch.load(path, map_location="cpu", weights_only=True)


def _assert_same(a, b, where=""):
    """Recursively bitwise-equal (tensors with torch.equal, everything else with ==)."""
    if torch.is_tensor(a):
        assert torch.is_tensor(b) and a.dtype == b.dtype and torch.equal(a, b), f"tensor differs at {where}"
    elif isinstance(a, dict):
        assert set(a) == set(b), f"keys differ at {where}: {set(a) ^ set(b)}"
        for k in a:
            _assert_same(a[k], b[k], f"{where}/{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), f"length differs at {where}"
        for i, (x, y) in enumerate(zip(a, b)):
            _assert_same(x, y, f"{where}[{i}]")
    else:
        assert a == b, f"value differs at {where}: {a!r} != {b!r}"


def test_resume_is_exact(tmp_path):
    from ldm_vs_gan.training import run

    t0 = time.perf_counter()
    common = {"trainer.accumulate": 2, "trainer.warmup_images": 48, "trainer.ema.decay": 0.9}
    run(make_cfg(tmp_path / "full", **common), data=standin_data)
    run(make_cfg(tmp_path / "half", **common, **{"trainer.max_images": 64}), data=standin_data)
    assert _load(tmp_path / "half/checkpoints/last.pt")["images_seen"] == 64
    run(make_cfg(tmp_path / "half", **common), data=standin_data)  # same run dir, full budget: resumes at 64
    full, half = _load(tmp_path / "full/checkpoints/last.pt"), _load(tmp_path / "half/checkpoints/last.pt")
    assert full["images_seen"] == half["images_seen"] == 128 and full["step"] == half["step"] == 8
    for key in ("networks", "optimizers", "ema", "rng", "skipped"):
        _assert_same(full[key], half[key], key)
    assert full["skipped"] == {"undecodable": 3}  # stand-in skips at positions 0, 48, 96: summed over the run
    from safetensors.torch import load_file

    _assert_same(
        load_file(tmp_path / "full/weights/generator.safetensors"),
        load_file(tmp_path / "half/weights/generator.safetensors"),
        "weights",
    )
    # metrics.jsonl tells one history: every step once, in order
    steps = [
        json.loads(ln)["images_seen"]
        for ln in (tmp_path / "half/metrics.jsonl").read_text().splitlines()
        if "step" in ln and "eval/" not in ln
    ]
    assert steps == list(range(16, 129, 16))
    print(f"resume test: {time.perf_counter() - t0:.1f}s")


def test_run_dir_layout_and_load_run(tmp_path):
    from ldm_vs_gan.training import load_run, run

    rd = run(make_cfg(tmp_path / "r", **{"trainer.ema.decay": 0.5}), data=standin_data)
    assert (rd / "config.yaml").exists() and (rd / "checkpoints/last.pt").exists()
    # keep_checkpoints=2 periodic copies at 64 and 128 (smoke: ckpt_every=64)
    assert sorted(p.name for p in (rd / "checkpoints").glob("images_*.pt")) == [
        "images_000000000064.pt",
        "images_000000000128.pt",
    ]
    assert sorted(p.name for p in (rd / "samples").glob("*.png")) == ["000000000064.png", "000000000128.png"]
    manifest = json.loads((rd / "weights/manifest.json").read_text())
    assert manifest["images_seen"] == 128 and manifest["networks"]["generator"]["ema"] is True
    fam, cfg, info = load_run(rd)
    assert info["images_seen"] == 128 and cfg.model.name == "regress"
    state = _load(rd / "checkpoints/last.pt")
    ema = state["ema"]["params"]
    for n, p in fam.generator.named_parameters():
        assert torch.equal(p, ema[n]), n  # the EMA weights, not the live ones
    assert not torch.equal(ema["net.0.weight"], state["networks"]["generator"]["net.0.weight"])
    fam_raw, _, info_raw = load_run(rd, weights="raw")
    assert torch.equal(fam_raw.generator.net[0].weight, state["networks"]["generator"]["net.0.weight"])
    img = fam.generate(["heldout sample 0"], [3])
    assert img.dtype == torch.uint8 and img.shape == (1, 3, 8, 8)


def test_init_from_copies_weights_and_starts_fresh(tmp_path):
    from ldm_vs_gan.training import run

    src = run(make_cfg(tmp_path / "src", **{"trainer.max_images": 32}), data=standin_data)
    # lr 0: the new run's weights stay those it was initialised with
    dst = run(
        make_cfg(tmp_path / "dst", init_from=str(src), **{"trainer.max_images": 16, "model.lr": 0.0}),
        data=standin_data,
    )
    a, b = _load(src / "checkpoints/last.pt"), _load(dst / "checkpoints/last.pt")
    assert b["images_seen"] == 16
    _assert_same(a["networks"], b["networks"], "networks")


def test_resume_refuses_another_model(tmp_path):
    from ldm_vs_gan.errors import ConfigError
    from ldm_vs_gan.training import run

    run(make_cfg(tmp_path / "r", **{"trainer.max_images": 16}), data=standin_data)
    with pytest.raises(ConfigError, match="model"):
        run(make_cfg(tmp_path / "r", **{"model.hidden": 32}), data=standin_data)


def test_run_leaves_the_callers_rng_streams_alone(tmp_path):
    """A caller that goes on after run() (a study script, a notebook, a test) keeps its RNG
    streams: they are as before the call."""
    import random

    import numpy as np

    from ldm_vs_gan.training import run

    torch.manual_seed(5)
    np.random.seed(5)
    random.seed(5)
    expected = (torch.rand(3), np.random.rand(), random.random())
    torch.manual_seed(5)
    np.random.seed(5)
    random.seed(5)
    run(make_cfg(tmp_path / "r", **{"trainer.max_images": 16}), data=standin_data)
    got = (torch.rand(3), np.random.rand(), random.random())
    assert torch.equal(expected[0], got[0]) and expected[1:] == got[1:]
