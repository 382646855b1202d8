"""Quick evaluation (family.evaluate + metrics.quick_eval, EMA weights) and the wandb logger."""

from __future__ import annotations

import json

import pytest
import torch
from omegaconf import OmegaConf
from support import standin_data
from support.engine import CONFIGS, make_cfg


def _records(rd):
    return [json.loads(ln) for ln in (rd / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture
def quick_plugin():
    """Registers a ``quick`` plug-in for the stand-in data (as a user's data source would), and
    removes it after the test."""
    from ldm_vs_gan import plugins

    class Quick:
        evaluate = None

    plugins.register("quick", "standin", Quick)
    yield Quick
    plugins.unregister("quick", "standin")


def test_quick_eval_runs_for_generative_families_with_ema_weights(tmp_path, quick_plugin):
    from ldm_vs_gan.training import run

    calls = []

    def fake_quick_eval(family, batches, data_cfg):
        calls.append(
            (
                sum(len(b) for b in batches),
                data_cfg.name,
                family.training,
                family.generator.net[0].weight.detach().clone(),
            )
        )
        return {"fid_toy": 1.5}

    quick_plugin.evaluate = staticmethod(fake_quick_eval)
    rd = run(
        make_cfg(tmp_path / "r", **{"trainer.eval_every": 64, "trainer.ema.decay": 0.5}), data=standin_data
    )
    evals = [r for r in _records(rd) if "eval/mse" in r]
    assert [r["images_seen"] for r in evals] == [64, 128]
    assert all(r["eval/fid_toy"] == 1.5 and r["ema"] is True for r in evals)
    assert sorted(p.name for p in (rd / "eval").glob("quick_*.json")) == [
        "quick_000000000064.json",
        "quick_000000000128.json",
    ]
    n, name, training, w = calls[-1]
    assert n == 16 and name == "standin" and training is False
    state = torch.load(rd / "checkpoints/last.pt", weights_only=True)
    assert torch.equal(w, state["ema"]["params"]["net.0.weight"])  # evaluated with the EMA swapped in
    # and the live weights were put back afterwards
    assert not torch.equal(state["networks"]["generator"]["net.0.weight"], w)


def test_data_without_quick_metrics_gets_the_familys_evaluate_only(tmp_path):
    from ldm_vs_gan.training import run

    rd = run(make_cfg(tmp_path / "r", **{"trainer.eval_every": 128}), data=standin_data)
    evals = [r for r in _records(rd) if "eval/mse" in r]
    assert evals and not any("eval/fid_toy" in r for r in evals)


def test_quick_eval_errors_propagate(tmp_path, quick_plugin):
    from ldm_vs_gan.training import run

    def broken(family, batches, data_cfg):
        raise RuntimeError("judge exploded")

    quick_plugin.evaluate = staticmethod(broken)
    with pytest.raises(RuntimeError, match="judge exploded"):
        run(make_cfg(tmp_path / "r", **{"trainer.eval_every": 64}), data=standin_data)


@pytest.mark.slow
def test_wandb_offline_logs_scalars_and_sample_grids(tmp_path):
    from ldm_vs_gan.training import run

    cfg = make_cfg(tmp_path / "r", **{"trainer.max_images": 64})
    cfg.logger = OmegaConf.load(CONFIGS / "logger" / "wandb.yaml")
    rd = run(cfg, data=standin_data)
    runs = list((rd / "wandb").glob("offline-run-*"))
    assert len(runs) == 1
    assert list(runs[0].glob("files/media/images/samples_64_*.png"))
    run_id = (rd / "wandb_id.txt").read_text().strip()
    assert runs[0].name.endswith(run_id)
