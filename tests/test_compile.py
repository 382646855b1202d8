"""trainer.compile: the tiny LDM trained through the engine with its UNet compiled gives the losses
and weights of the eager run (within float tolerance), and its checkpoint, EMA and exported
weights keep the plain modules' names; GALIP compiles its generator and leaves Mate-D eager (MA-GP
differentiates its gradients again, which compiled graphs refuse).

The fast tests use the ``aot_eager`` backend (the same capture and autograd path as inductor,
without generating kernels: inductor needs about a minute of C++ compilation per graph on one
core); the slow test uses the default ``inductor``.
"""

from __future__ import annotations

import json

import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import open_dict
from safetensors.torch import load_file
from support import ldm as ldm_support
from support import standin_data
from support.engine import CONFIGS, RES

from ldm_vs_gan.errors import ConfigError

STEPS = 3  # images 16, 32, 48 (trainer=smoke: 16 per step)


def _train(run_dir, *overrides: str):
    return next(ldm_support.tiny_ldm_run(run_dir, f"trainer.max_images={16 * STEPS}", *overrides))


def _losses(run_dir) -> list[float]:
    rows = [json.loads(ln) for ln in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [float(r["denoiser/loss"]) for r in rows if "denoiser/loss" in r]


def _ckpt(run_dir) -> dict:
    return torch.load(run_dir / "checkpoints/last.pt", map_location="cpu", weights_only=True)


@pytest.fixture(scope="module")
def eager_run(tmp_path_factory):
    return _train(tmp_path_factory.mktemp("eager") / "run")


def _assert_same_training(eager, compiled, rtol):
    le, lc = _losses(eager), _losses(compiled)
    assert len(le) == len(lc) == STEPS
    assert lc == pytest.approx(le, rel=rtol, abs=rtol)
    ce, cc = _ckpt(eager), _ckpt(compiled)
    assert list(cc["networks"]["unet"]) == list(ce["networks"]["unet"])  # no _orig_mod. prefixes
    assert list(cc["ema"]["params"]) == list(ce["ema"]["params"])
    for k, v in ce["networks"]["unet"].items():
        torch.testing.assert_close(cc["networks"]["unet"][k], v, rtol=rtol, atol=rtol)
    for k, v in ce["ema"]["params"].items():
        torch.testing.assert_close(cc["ema"]["params"][k], v, rtol=rtol, atol=rtol)
    exported = sorted(p.name for p in (compiled / "weights").glob("*.safetensors"))
    assert exported == sorted(p.name for p in (eager / "weights").glob("*.safetensors"))
    for name in exported:
        assert not any("_orig_mod" in k for k in load_file(compiled / "weights" / name))


def _graphs() -> int:
    from torch._dynamo.utils import counters

    return int(counters["stats"]["unique_graphs"])


def test_compiled_ldm_trains_like_eager(eager_run, tmp_path):
    before = _graphs()
    compiled = _train(tmp_path / "run", "trainer.compile=true", "trainer.compile_backend=aot_eager")
    assert _graphs() > before  # the UNet really ran as a captured graph
    _assert_same_training(eager_run, compiled, rtol=1e-4)
    # a run resumes with compile switched off: same parameter names, no refusal
    resumed = _train(compiled, f"trainer.max_images={16 * (STEPS + 1)}")
    assert _ckpt(resumed)["images_seen"] == 16 * (STEPS + 1)


@pytest.mark.slow
def test_inductor_compiled_ldm_trains_like_eager(eager_run, tmp_path):
    compiled = _train(tmp_path / "run", "trainer.compile=true")
    _assert_same_training(eager_run, compiled, rtol=2e-3)


def test_compiled_galip_keeps_mate_d_eager(tmp_path, capfd):
    from ldm_vs_gan.training import run

    with initialize_config_dir(str(CONFIGS), version_base="1.3"):
        cfg = compose(
            "train",
            overrides=[
                "model=galip",
                "experiment=galip_tiny",
                "logger=none",
                f"run_dir={tmp_path / 'run'}",
                f"data.resolution={RES}",
                "trainer.eval_every=0",
                "trainer.sample_every=0",
                "trainer.max_images=32",
                "trainer.compile=true",
                "trainer.compile_backend=aot_eager",
            ],
        )
    with open_dict(cfg):
        cfg.data.name = "standin"
    torch.set_num_threads(1)
    before = _graphs()
    rd = run(cfg, data=standin_data)
    assert _graphs() > before  # the generator was captured
    assert "discriminator stays eager" in capfd.readouterr().err
    rows = [json.loads(ln) for ln in (rd / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in rows if "generator/loss" in r]
    assert [r["images_seen"] for r in steps] == [16, 32]
    for r in steps:
        for k in ("discriminator/loss", "discriminator/ma_gp", "generator/loss"):
            assert torch.isfinite(torch.tensor(float(r[k]))), k
    nets = _ckpt(rd)["networks"]
    assert not any(k.startswith("_orig_mod") for n in nets.values() for k in n)


def test_unknown_compile_backend_is_one_line(tmp_path):
    with pytest.raises(ConfigError, match="trainer.compile_backend='tvm'.*inductor"):
        _train(tmp_path / "run", "trainer.compile=true", "trainer.compile_backend=tvm")
