"""The `model=vae` stage: a tiny config trains a few steps through the engine, logs PSNR, measures
its latent scaling factor, and its run loads as a FrozenAutoencoder (`autoencoder.source=run`)."""

import json

import torch
from test_stage_support import stage_cfg

from ldm_vs_gan.components import build_autoencoder
from ldm_vs_gan.stages.vae import psnr


def test_psnr():
    x = torch.zeros(2, 3, 4, 4)
    y = x.clone()
    y[1] += 0.2  # 0.1 on the [0,1] scale -> 20 dB
    p = psnr(y, x)
    assert p[0] > 90 and abs(p[1].item() - 20.0) < 1e-4


def test_tiny_vae_stage_trains_and_loads_as_frozen_autoencoder(tmp_path):
    torch.set_num_threads(1)
    from ldm_vs_gan.training import load_run, run

    rd = run(stage_cfg("vae", tmp_path / "run"))
    rows = [json.loads(ln) for ln in (rd / "metrics.jsonl").read_text().splitlines()]
    assert [r["images_seen"] for r in rows if "vae/loss" in r] == [16, 32]
    ev = [r for r in rows if "eval/psnr" in r][-1]
    assert ev["eval/psnr"] > 0 and ev["eval/scaling_factor"] > 0
    assert list((rd / "samples").glob("*.png"))
    fam, cfg, _ = load_run(rd)
    ae = build_autoencoder({"source": "run", "path": str(rd)})
    assert ae.factor == 4 and ae.latent_channels == 4
    # the scaling factor stored with the weights is the one measured on held-out data
    assert abs(ae.scaling_factor - ev["eval/scaling_factor"]) < 1e-4 * ev["eval/scaling_factor"]
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    torch.testing.assert_close(ae.encode(x), fam.vae.vae.encode(x).latent_dist.mode() * ae.scaling_factor)
    torch.testing.assert_close(ae.decode(ae.encode(x)), fam.reconstruct(x))
