"""Precomputed latents and text features (``python -m ldm_vs_gan.precompute``, ``data.precomputed``):
written through the CLI from a tiny toy world, the LDM trains from them with the losses of the
on-the-fly path (both latent modes), the held-out split keeps its images, a run whose encoders
differ from the shards' is one line at start-up, and randomly decoded data is refused."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
from support.configs import compose_train
from support.engine import REPO, subprocess_env

from ldm_vs_gan.data.batch import Batch
from ldm_vs_gan.errors import ConfigError, UserError

WORLD = ["data.n_train=64", "data.n_heldout=16", "data.shard_size=64"]
TINY = ["model=ldm", "experiment=ldm_tiny", "logger=none", "trainer.eval_every=0", "trainer.sample_every=0"]


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "ldm_vs_gan.precompute", *args],
        cwd=REPO,
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    out = tmp_path_factory.mktemp("pre") / "shards"
    r = _cli("model=ldm", "experiment=ldm_tiny", *WORLD, f"out={out}", "batch_size=24", "shard_size=40")
    assert r.returncode == 0, r.stderr
    assert "data.precomputed=true" in r.stderr  # the training command is printed
    return out


def _precomputed(shards, *extra: str) -> list[str]:
    return [
        "data=laion",
        "data.precomputed=true",
        "data.resolution=32",
        "data.num_workers=0",
        f"data.shards={shards}/train-*.tar",
        f"data.heldout_shards={shards}/heldout-*.tar",
        *extra,
    ]


def _losses(run_dir) -> list[float]:
    rows = [json.loads(ln) for ln in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [r["denoiser/loss"] for r in rows if "denoiser/loss" in r]


def _train(overrides: list[str]) -> list[float]:
    from ldm_vs_gan.training import run

    torch.set_num_threads(1)
    return _losses(run(compose_train(overrides)))


def test_shards_hold_the_arrays_and_meta(shards):
    meta = json.loads((shards / "meta.json").read_text())
    assert meta["splits"]["train"]["n"] == 64 and meta["splits"]["heldout"]["n"] == 16
    assert meta["splits"]["train"]["shards"] == ["train-000000.tar", "train-000001.tar"]
    assert set(meta["identity"]) == {"resolution", "clip", "autoencoder"}
    from ldm_vs_gan.data.shards import ShardIndex

    raw = ShardIndex([str(shards / "train-000000.tar")]).read(0)
    assert {"txt", "json", "latent_mean.npy", "latent_std.npy", "text_tokens.npy"} <= set(raw)
    assert "png" not in raw  # the train split is not decoded again: no image
    import io

    std = np.load(io.BytesIO(raw["latent_std.npy"]), allow_pickle=False)
    assert std.shape == (4, 8, 8) and std.dtype == np.float32 and (std > 0).all()


@pytest.mark.parametrize("latent", ["mode", "sample"])
def test_losses_equal_the_on_the_fly_path(shards, tmp_path, latent):
    """Same seed, same samples in the same order, same RNG draws: the losses agree up to the
    float rounding of another encoder batch size; ``sample`` draws a fresh latent each step."""
    common = [*TINY, "trainer.max_images=48", f"autoencoder.latent={latent}"]
    fly = _train([*common, *WORLD, f"run_dir={tmp_path / 'fly'}"])
    pre = _train([*common, *_precomputed(shards), f"run_dir={tmp_path / 'pre'}"])
    assert len(fly) == 3
    np.testing.assert_allclose(pre, fly, rtol=1e-4)
    if latent == "sample":
        mode = _train([*TINY, "trainer.max_images=48", *_precomputed(shards), f"run_dir={tmp_path / 'mode'}"])
        assert not np.allclose(pre, mode, rtol=1e-3)


def test_sample_mode_draws_per_step_and_the_heldout_split_keeps_images(shards):
    from ldm_vs_gan import data
    from ldm_vs_gan.ldm.family import LDMFamily
    from ldm_vs_gan.training.checkpoint import seed_all

    cfg = compose_train([*TINY, *_precomputed(shards), "autoencoder.latent=sample"])
    seed_all(0)
    fam = LDMFamily.from_config(cfg)
    batch = data.heldout_batch(cfg.data, 16)
    mean, std = batch.extras["latent_mean"], batch.extras["latent_std"]
    z1, z2 = fam.encode_images(batch), fam.encode_images(batch)
    assert not torch.equal(z1, z2)
    eps = (z1 - mean) / std  # mean + std * eps with eps ~ N(0, 1): 4096 draws
    assert abs(float(eps.mean())) < 0.1 and 0.9 < float(eps.std()) < 1.1
    fam.ae.latent = "mode"
    assert torch.equal(fam.encode_images(batch), mean)
    toy = data.heldout_batch(compose_train([*TINY, *WORLD]).data, 16)
    assert torch.equal(batch.images, toy.images) and batch.captions == toy.captions
    assert batch.attributes == toy.attributes and batch.keys == toy.keys


def test_other_encoders_or_resolution_are_one_line_at_start_up(shards, tmp_path):
    from ldm_vs_gan.training import run

    for extra, needle in [
        (["seed=1"], "clip: its weights"),  # random weights of another seed
        (["clip.token_layer=0"], "clip.token_layer"),
        (["autoencoder.scaling_factor=0.5"], "autoencoder.scaling_factor"),
        (["data.resolution=16"], "data.resolution=16"),
    ]:
        cfg = compose_train([*TINY, *_precomputed(shards), *extra, f"run_dir={tmp_path / needle[:4]}"])
        with pytest.raises(ConfigError, match=needle) as e:
            run(cfg)
        assert "\n" not in str(e.value) and "precompute again" in str(e.value)
    bare = tmp_path / "bare"
    bare.mkdir()
    shutil.copy(shards / "train-000000.tar", bare)
    cfg = compose_train([*TINY, *_precomputed(bare), f"run_dir={tmp_path / 'x'}"])
    with pytest.raises(UserError, match="meta.json is missing"):
        run(cfg)


def test_reading_precomputed_shards_as_images_names_the_key(shards):
    from ldm_vs_gan import data

    train_as_heldout = f"data.heldout_shards={shards}/train-*.tar"  # the held-out split keeps images
    cfg = compose_train([*TINY, *_precomputed(shards, "data.precomputed=false", train_as_heldout)])
    with pytest.raises(UserError, match="set data.precomputed=true"):
        data.heldout_batch(cfg.data, 4)


def test_random_decoding_is_refused(tmp_path):
    r = _cli("model=ldm", "experiment=ldm_tiny", *WORLD, "data.crop=random", f"out={tmp_path / 'o'}")
    assert r.returncode == 2 and r.stderr.strip().splitlines() == [r.stderr.strip()]
    assert "data.crop='random'" in r.stderr and not (tmp_path / "o").exists()
    from ldm_vs_gan import data

    node = {"name": "laion", "shards": "x.tar", "precomputed": True, "hflip": True}
    with pytest.raises(ConfigError, match="data.precomputed"):
        data.check_config(node)


def test_batch_carries_extras_through_split_cat_and_to():
    b = Batch(
        torch.zeros(4, 3, 0, 0),
        ["a", "b", "c", "d"],
        extras={"x": torch.arange(4.0), "m": torch.tensor([True, False, True, False])},
    )
    parts = b.split(2)
    assert [p.extras["x"].tolist() for p in parts] == [[0.0, 1.0], [2.0, 3.0]]
    back = Batch.cat(parts).to("cpu")
    assert torch.equal(back.extras["m"], b.extras["m"]) and back.images.shape == (4, 3, 0, 0)
    assert Batch.cat([Batch(torch.zeros(1, 3, 2, 2), ["a"])]).extras is None
