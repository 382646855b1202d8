"""The LDM family: trains a few steps through the engine (model=ldm experiment=ldm_tiny, composed
as `python -m ldm_vs_gan.train` does, on the engine's stand-in data), generates per-seed images
that can be regenerated alone, and rejects bad sampling options with one-line errors."""

import json

import pytest
import torch
from hydra import compose, initialize_config_dir
from support import ldm as ldm_support
from test_engine_support import CONFIGS, RES

from ldm_vs_gan.errors import ConfigError


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    yield from ldm_support.tiny_ldm_run(tmp_path_factory.mktemp("ldm") / "run", "trainer.max_images=64")


def test_tiny_ldm_trains_through_the_engine(tiny_run):
    rows = [json.loads(ln) for ln in (tiny_run / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in rows if "denoiser/loss" in r]
    assert [r["images_seen"] for r in steps] == [16, 32, 48, 64]
    assert all(torch.isfinite(torch.tensor(float(r["denoiser/loss"]))) for r in steps)
    ck = torch.load(tiny_run / "checkpoints/last.pt", map_location="cpu", weights_only=True)
    assert set(ck["networks"]) == {"unet"}  # frozen CLIP/VAE are not trained or checkpointed
    assert list((tiny_run / "samples").glob("*.png")), "the loop wrote sample grids"


def test_generate_per_image_seeds_and_options(tiny_run):
    from ldm_vs_gan.training import load_run

    fam, _, _ = load_run(tiny_run)
    assert fam.ema_network == "unet" and fam.generative
    d = fam.sampling_defaults()
    assert set(d) >= {"sampler", "steps", "guidance", "negative_prompt"}
    caps = ["a red circle", "a blue square", "a green triangle"]
    seeds = [0, 2**40 + 1, 7]
    for sampler in ("ddpm", "dpmpp_2m_karras"):
        imgs = fam.generate(caps, seeds, sampler=sampler, steps=3, guidance=2.0, negative_prompt="yellow")
        assert imgs.shape == (3, 3, RES, RES) and imgs.dtype == torch.uint8
        alone = fam.generate(
            caps[1:2], seeds[1:2], sampler=sampler, steps=3, guidance=2.0, negative_prompt="yellow"
        )
        # same image when regenerated alone (up to float rounding of a different batch size)
        assert (imgs[1].int() - alone[0].int()).abs().max() <= 2
    other = fam.generate(caps[1:2], [5], steps=3)
    assert not torch.equal(other[0], fam.generate(caps[1:2], [6], steps=3)[0])
    with pytest.raises(ConfigError, match="sampler='heun'"):
        fam.generate(caps, seeds, sampler="heun")
    with pytest.raises(ConfigError, match="truncation"):
        fam.generate(caps, seeds, truncation=1.0)
    with pytest.raises(ConfigError, match="steps"):
        fam.generate(caps, seeds, steps=0)


def test_pooled_conditioning_trains_and_generates(tmp_path_factory):
    """model.conditioning.pooled=true: the UNet also takes the pooled text embedding, in training,
    in the checkpoint and through guided sampling (where "" supplies the unconditional one)."""
    from ldm_vs_gan.training import load_run

    run = ldm_support.tiny_ldm_run(
        tmp_path_factory.mktemp("pooled") / "run", "trainer.max_images=32", "model.conditioning.pooled=true"
    )
    rd = next(run)
    fam, _, _ = load_run(rd)
    assert fam.unet.pooled_mlp is not None and fam.unet.cfg.pooled_dim == fam.clip.embed_dim
    ck = torch.load(rd / "checkpoints/last.pt", map_location="cpu", weights_only=True)
    assert any(k.startswith("pooled_mlp.") for k in ck["networks"]["unet"])
    caps, seeds = ["a red circle", "a blue square"], [3, 4]
    imgs = fam.generate(caps, seeds, steps=3, guidance=2.0)
    alone = fam.generate(caps[1:], seeds[1:], steps=3, guidance=2.0)
    assert imgs.shape[0] == 2 and (imgs[1].int() - alone[0].int()).abs().max() <= 2
    next(run, None)  # undo the data stand-in


def test_clip_token_layer_selects_the_tokens_the_unet_reads(tiny_run):
    """clip.token_layer: the family's (memoised) conditioning is that layer's tokens; an
    out-of-range layer is a one-line config error naming the key."""
    from omegaconf import OmegaConf

    from ldm_vs_gan.components import build_clip
    from ldm_vs_gan.ldm.family import LDMFamily
    from ldm_vs_gan.training import load_run

    fam, cfg, _ = load_run(tiny_run)
    caps = ["a red circle", "a blue square"]
    assert fam.clip.token_layer == -1
    default = fam.encode_text(caps)[0]
    for layer in (0, -2):
        node = OmegaConf.merge(cfg.clip, {"token_layer": layer})
        clip = build_clip(node, data_cfg=cfg.data)
        other = LDMFamily(clip, fam.ae, cfg.model, int(cfg.data.resolution))
        tokens, mask = other.encode_text(caps)[:2]
        ref = clip.encode_text(caps, token_layer=layer)
        # the family encodes each new caption alone: another batch layout, float32 tolerance
        torch.testing.assert_close(tokens, ref.tokens.float(), rtol=1e-4, atol=1e-5)
        assert torch.equal(mask, ref.mask)
        torch.testing.assert_close(other.encode_text(caps)[0], tokens, rtol=0, atol=0)  # cached
        assert not torch.allclose(tokens, default)
    with pytest.raises(ConfigError, match="clip.token_layer"):
        build_clip(OmegaConf.merge(cfg.clip, {"token_layer": 99}), data_cfg=cfg.data)


def test_caption_dropout_and_thesis_preset_compose():
    with initialize_config_dir(str(CONFIGS), version_base="1.3"):
        cfg = compose("train", overrides=["model=ldm", "experiment=ldm_thesis"])
    d = cfg.model.diffusion
    assert (d.target, d.loss, d.t_sampling) == ("x0", "l1", "skewed")
    assert cfg.model.unet.size == "thesis128" and cfg.data.resolution == 128
    assert cfg.model.conditioning.caption_dropout == 0.1


def test_evaluate_gives_the_held_out_loss_per_timestep_stratum(tiny_run):
    """The LDM's quick evaluation: held-out denoising loss at four fixed timestep strata, the same
    noise draw every time (so two calls on the same weights agree exactly)."""
    from support import standin_data

    from ldm_vs_gan.training import load_run

    family, _, _ = load_run(tiny_run)

    batch = standin_data.heldout_batch(None, 8)
    a, b = family.evaluate([batch]), family.evaluate([batch])
    assert sorted(a) == [
        "val_loss/t0000-0249",
        "val_loss/t0250-0499",
        "val_loss/t0500-0749",
        "val_loss/t0750-0999",
    ]
    assert a == b and all(v > 0 for v in a.values())
