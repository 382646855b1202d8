"""The `tiny` GALIP configuration trains a few steps through the engine (model=galip
experiment=galip_tiny, composed by Hydra as `python -m ldm_vs_gan.train` does), on the engine's
stand-in data (8x8 images, no toy world needed)."""

import json

import torch
from hydra import compose, initialize_config_dir
from omegaconf import open_dict
from support import standin_data
from support.engine import CONFIGS, RES


def test_tiny_galip_trains_through_the_engine(tmp_path):
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
                "trainer.max_images=64",
            ],
        )
    with open_dict(cfg):
        cfg.data.name = "standin"
    from ldm_vs_gan.training import load_run, run

    rd = run(cfg, data=standin_data)
    rows = [json.loads(ln) for ln in (rd / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in rows if "discriminator/loss" in r]
    assert [r["images_seen"] for r in steps] == [16, 32, 48, 64]
    for r in steps:  # both phases ran and logged their terms, all finite
        for k in ("discriminator/ma_gp", "discriminator/mismatch", "generator/clip_sim", "generator/loss"):
            assert k in r and torch.isfinite(torch.tensor(float(r[k]))), k
    # Adam with the configured betas and learning rates (official values: tests/test_galip_presets.py)
    ck = torch.load(rd / "checkpoints/last.pt", map_location="cpu", weights_only=True)
    assert set(ck["networks"]) == {"generator", "discriminator"}
    fam, _, _ = load_run(rd)
    imgs = fam.generate(["a red circle", "a red circle"], [1, 2])
    assert imgs.shape == (2, 3, RES, RES) and imgs.dtype == torch.uint8
    assert [ph.optimizer.betas for ph in fam.phases()] == [tuple(cfg.model.optim.betas)] * 2
    assert [ph.optimizer.lr for ph in fam.phases()] == [cfg.model.optim.lr_d, cfg.model.optim.lr_g]
