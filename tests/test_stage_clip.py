"""The `model=clip` stage: a tiny config trains a few steps through the engine, logs retrieval,
and its run loads as a FrozenCLIP (`clip.source=run`) and as `clip.source=toy` once the toy
preparer's step (ensure_stage) made it; building the component never trains it."""

import json
import time

import pytest
import torch
from test_stage_support import SMOKE, TINY, stage_cfg

from ldm_vs_gan.components import build_clip
from ldm_vs_gan.data.batch import Batch
from ldm_vs_gan.stages.clip import content_key, positives


def test_positives_pair_equal_content_only():
    a = {
        "objects": [{"shape": "circle", "color": "red", "size": "small", "x": 0.2, "y": 0.3}],
        "relation": None,
    }
    b = {
        "objects": [{"shape": "circle", "color": "red", "size": "small", "x": 0.8, "y": 0.5}],
        "relation": None,
    }
    c = {
        "objects": [{"shape": "circle", "color": "blue", "size": "small", "x": 0.2, "y": 0.3}],
        "relation": None,
    }
    assert content_key(a) == content_key(b) != content_key(c)
    pos = positives(Batch(torch.zeros(3, 3, 4, 4), ["x", "y", "z"], attributes=[a, b, c]), "cpu")
    assert pos.tolist() == [[True, True, False], [True, True, False], [False, False, True]]
    plain = positives(Batch(torch.zeros(2, 3, 4, 4), ["x", "y"], attributes=[None, None]), "cpu")
    assert plain.tolist() == [[True, False], [False, True]]  # no attributes (LAION): one-hot CLIP


def test_ema_switch_names_the_averaged_network(tmp_path):
    from ldm_vs_gan.stages.clip import CLIPStage

    on = CLIPStage.from_config(stage_cfg("clip", tmp_path / "a", extra=["model.ema=true"]))
    off = CLIPStage.from_config(stage_cfg("clip", tmp_path / "b", extra=["model.ema=false"]))
    assert on.ema_network == "clip" and off.ema_network is None
    assert type(on).ema_network is None  # the switch is per instance, not a class change


def test_tiny_clip_stage_trains_and_loads_as_frozen_clip(tmp_path):
    torch.set_num_threads(1)
    from ldm_vs_gan.training import load_run, run

    rd = run(stage_cfg("clip", tmp_path / "run"))
    rows = [json.loads(ln) for ln in (rd / "metrics.jsonl").read_text().splitlines()]
    assert [r["images_seen"] for r in rows if "clip/loss" in r] == [16, 32]
    ev = [r for r in rows if "eval/retrieval_top1_single" in r]
    assert ev and 0.0 <= ev[-1]["eval/retrieval_top1_single"] <= 1.0
    assert (rd / "weights/clip.safetensors").is_file() and list((rd / "samples").glob("*.png"))
    # the default recipe averages the weights (model.ema): weights/ holds the EMA network
    manifest = json.loads((rd / "weights/manifest.json").read_text())
    assert manifest["ema_network"] == "clip" and manifest["networks"]["clip"]["ema"] is True
    fam, _, _ = load_run(rd)
    clip = build_clip({"source": "run", "path": str(rd)})
    assert clip.info["source"] == "run" and clip.vit_grid == (4, 4) and clip.token_dim == 32
    caps = ["a small red circle", "a large green cross above a small blue square"]
    ids = fam.tokenizer(caps)
    # two code paths (FrozenCLIP's text pass, the stage's open_clip encode_text): equal up to rounding
    torch.testing.assert_close(clip.encode_text(caps).pooled, fam.clip.encode_text(ids), rtol=1e-5, atol=1e-6)


def test_the_preparer_trains_the_toy_stage_once_and_building_never_does(tmp_path, capfd):
    from omegaconf import OmegaConf

    from ldm_vs_gan.errors import UserError
    from ldm_vs_gan.toy.stages import ensure_stage

    data = stage_cfg("clip", tmp_path / "unused").data
    comp = {"source": "toy", "stage_overrides": [*TINY["clip"], *SMOKE]}
    with pytest.raises(UserError, match="toy CLIP for this toy world is not trained yet"):
        build_clip(comp, data_cfg=data)
    run_dir = ensure_stage("clip", comp, data)
    err = capfd.readouterr().err
    assert "no toy CLIP is cached" in err and "training it now" in err
    assert OmegaConf.load(f"{run_dir}/config.yaml").trainer.max_images == 32
    clip = build_clip(comp, data_cfg=data)
    t = time.perf_counter()
    assert ensure_stage("clip", comp, data) == run_dir and time.perf_counter() - t < 10
    again = build_clip(comp, data_cfg=data)
    assert "training it now" not in capfd.readouterr().err and again.info["path"] == clip.info["path"]
    torch.testing.assert_close(
        again.encode_text(["a red circle"]).pooled, clip.encode_text(["a red circle"]).pooled
    )


def test_toy_source_refuses_other_data(tmp_path):
    from ldm_vs_gan.errors import UserError

    laion = {"name": "laion", "shards": str(tmp_path / "x.tar"), "heldout_shards": str(tmp_path / "x.tar")}
    with pytest.raises(UserError, match=r"clip.source=toy is the toy world's CLIP.*clip=run clip.path="):
        build_clip({"source": "toy"}, data_cfg=laion)
