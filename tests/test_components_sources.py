"""Where weights come from: files round-trip, run dirs load, absent weights fail fast and clearly."""

import hashlib
import json
import time

import pytest
import torch
from omegaconf import OmegaConf
from test_components_support import CONFIGS

from ldm_vs_gan.components import build_autoencoder, build_clip
from ldm_vs_gan.errors import ConfigError, MissingWeightsError, UserError

DATA = {"resolution": 32}


def _tiny_clip_cfg(**kw):
    cfg = OmegaConf.to_container(OmegaConf.load(CONFIGS / "clip/tiny.yaml"))
    cfg.update(kw)
    return cfg


def _tiny_ae_cfg(**kw):
    cfg = OmegaConf.to_container(OmegaConf.load(CONFIGS / "autoencoder/tiny.yaml"))
    cfg.update(kw)
    return cfg


@pytest.mark.parametrize(
    "cfg_name, key",
    [
        ("clip/vit_b32_laion", "clip.pretrained='laion2b_s34b_b79k'"),
        ("clip/vit_b32_openai", "clip.pretrained='openai'"),
        ("clip/vit_l14", "clip.pretrained='laion2b_s32b_b82k'"),
        ("autoencoder/sd_vae", "autoencoder.repo='stabilityai/sd-vae-ft-mse'"),
    ],
)
def test_missing_pretrained_weights_fail_fast_naming_the_key(cfg_name, key, monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))  # an empty cache, whatever the machine has
    cfg = OmegaConf.load(CONFIGS / f"{cfg_name}.yaml")
    build = build_clip if cfg_name.startswith("clip") else build_autoencoder
    t = time.perf_counter()
    with pytest.raises(MissingWeightsError) as e:
        build(cfg, data_cfg=DATA)
    assert time.perf_counter() - t < 1.0
    msg = str(e.value)
    assert key in msg and "\n" not in msg
    assert "machine with internet" in msg and "config.json" not in msg


def test_missing_file_dir_and_run_name_their_key(tmp_path):
    with pytest.raises(MissingWeightsError, match=r"clip\.path="):
        build_clip(_tiny_clip_cfg(source="file", path=str(tmp_path / "nope.safetensors")), data_cfg=DATA)
    with pytest.raises(MissingWeightsError, match=r"clip\.path="):
        build_clip(_tiny_clip_cfg(source="local-dir", path=str(tmp_path)), data_cfg=DATA)
    with pytest.raises(MissingWeightsError, match=r"clip\.path="):
        build_clip(_tiny_clip_cfg(source="run", path=str(tmp_path)), data_cfg=DATA)
    with pytest.raises(MissingWeightsError, match=r"autoencoder\.path="):
        build_autoencoder(_tiny_ae_cfg(source="local-dir", path=str(tmp_path)), data_cfg=DATA)
    with pytest.raises(MissingWeightsError, match=r"autoencoder\.path is not set"):
        build_autoencoder(_tiny_ae_cfg(source="run", path=None), data_cfg=DATA)


def test_bad_source_lists_the_allowed_values():
    with pytest.raises(
        ConfigError, match=r"clip\.source='hub'.*pretrained, file, local-dir, run, random, toy"
    ):
        build_clip(_tiny_clip_cfg(source="hub"))
    with pytest.raises(
        ConfigError, match=r"autoencoder\.source='pretrained'.*hub, local-dir, run, random, toy"
    ):
        build_autoencoder(_tiny_ae_cfg(source="pretrained"))


@pytest.mark.parametrize("suffix", [".safetensors", ".pt"])
def test_clip_weights_file_round_trips(tmp_path, suffix):
    torch.manual_seed(3)
    a = build_clip(_tiny_clip_cfg(), data_cfg=DATA)
    path = tmp_path / f"clip{suffix}"
    sd = {k: v.contiguous() for k, v in a.model.state_dict().items()}
    if suffix == ".safetensors":
        from safetensors.torch import save_file

        save_file(sd, path)
    else:
        torch.save({"state_dict": {f"module.{k}": v for k, v in sd.items()}}, path)  # DDP-style wrapper
    torch.manual_seed(4)  # a different random init, overwritten by the file
    b = build_clip(_tiny_clip_cfg(source="file", path=str(path)), data_cfg=DATA)
    assert b.info["source"] == "file" and len(b.info["sha256"]) == 64
    caps = ["a small red circle"]
    torch.testing.assert_close(a.encode_text(caps).pooled, b.encode_text(caps).pooled, rtol=0, atol=0)
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    torch.testing.assert_close(a.encode_image(x), b.encode_image(x), rtol=0, atol=0)


def test_file_of_another_architecture_is_a_clear_error(tmp_path):
    from safetensors.torch import save_file

    save_file({"x": torch.zeros(1)}, tmp_path / "w.safetensors")
    with pytest.raises(MissingWeightsError, match="does not match the architecture"):
        build_clip(_tiny_clip_cfg(source="file", path=str(tmp_path / "w.safetensors")), data_cfg=DATA)


def test_autoencoder_local_dir_round_trips(tmp_path):
    torch.manual_seed(0)
    a = build_autoencoder(_tiny_ae_cfg(), data_cfg=DATA)
    a.vae.save_pretrained(tmp_path / "vae")
    b = build_autoencoder(
        _tiny_ae_cfg(source="local-dir", path=str(tmp_path / "vae"), scaling_factor=0.5), data_cfg=DATA
    )
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    torch.testing.assert_close(a.encode(x) * 0.5, b.encode(x))
    z = torch.randn(2, 4, 8, 8)
    torch.testing.assert_close(a.decode(z * 2.0), b.decode(z))


def test_autoencoder_api(tmp_path):
    torch.manual_seed(0)
    ae = build_autoencoder(_tiny_ae_cfg(scaling_factor=0.25), data_cfg=DATA)
    assert (ae.factor, ae.latent_channels, ae.scaling_factor) == (4, 4, 0.25)
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    z = ae.encode(x)
    assert z.shape == (2, 4, 8, 8)
    torch.testing.assert_close(z, ae.vae.encode(x).latent_dist.mode() * 0.25)  # latent=mode: deterministic
    assert ae.decode(z).shape == (2, 3, 32, 32)
    ae64 = build_autoencoder(_tiny_ae_cfg(), data_cfg={"resolution": 64})
    assert ae64.factor == 8 and ae64.encode(torch.zeros(1, 3, 64, 64)).shape == (1, 4, 8, 8)
    with pytest.raises(ConfigError, match="autoencoder.latent"):
        build_autoencoder(_tiny_ae_cfg(latent="mean"), data_cfg=DATA)


def test_missing_vae_is_reported_before_the_toy_clip_trains(monkeypatch, tmp_path):
    """autoencoder=sd_vae offline with an empty cache: the error comes at once, no CLIP stage."""
    from hydra import compose, initialize_config_dir

    from ldm_vs_gan.ldm.family import LDMFamily

    monkeypatch.setenv("LDM_VS_GAN_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    with initialize_config_dir(str(CONFIGS), version_base="1.3"):
        cfg = compose("train", overrides=["model=ldm", "clip=toy", "autoencoder=sd_vae", "logger=none"])
    t = time.perf_counter()
    with pytest.raises(MissingWeightsError, match=r"autoencoder\.repo='stabilityai/sd-vae-ft-mse'"):
        LDMFamily.from_config(cfg)
    assert time.perf_counter() - t < 5.0
    assert not list((tmp_path / "cache").glob("stages/clip-*"))


def test_check_available_names_the_key_and_passes_what_is_built_here(tmp_path):
    from ldm_vs_gan.components import check_available

    check_available(clip={"source": "toy"}, autoencoder={"source": "random"})  # nothing to locate
    with pytest.raises(MissingWeightsError, match=r"clip\.path="):
        check_available(clip={"source": "run", "path": str(tmp_path)})
    with pytest.raises(ConfigError, match=r"autoencoder\.source='nope'"):
        check_available(autoencoder={"source": "nope"})


@pytest.mark.parametrize("keep", [0, 5, 200])
def test_unreadable_weights_file_is_one_line_naming_it(tmp_path, keep):
    torch.manual_seed(3)
    a = build_clip(_tiny_clip_cfg(), data_cfg=DATA)
    path = tmp_path / "clip.safetensors"
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in a.model.state_dict().items()}, path)
    path.write_bytes(path.read_bytes()[:keep])
    with pytest.raises(UserError) as e:
        build_clip(_tiny_clip_cfg(source="file", path=str(path)), data_cfg=DATA)
    assert str(path) in str(e.value) and "\n" not in str(e.value)


def _clip_stage_run(tmp_path, sha256=None):
    """A CLIP stage run dir as the engine writes it (config.yaml, weights/ + manifest.json)."""
    torch.manual_seed(3)
    cfg = _tiny_clip_cfg()
    clip = build_clip(cfg, data_cfg=DATA)
    run = tmp_path / "stage"
    (run / "weights").mkdir(parents=True)
    OmegaConf.save(OmegaConf.create({"model": {"arch": cfg["arch"]}, "data": DATA}), run / "config.yaml")
    from safetensors.torch import save

    blob = save({k: v.contiguous() for k, v in clip.model.state_dict().items()})
    (run / "weights/clip.safetensors").write_bytes(blob)
    entry = {"file": "clip.safetensors", "sha256": sha256 or hashlib.sha256(blob).hexdigest()}
    (run / "weights/manifest.json").write_text(json.dumps({"networks": {"clip": entry}}))
    return run, clip, hashlib.sha256(blob).hexdigest()


def test_run_weights_are_checked_against_the_manifest(tmp_path):
    run, clip, digest = _clip_stage_run(tmp_path)
    loaded = build_clip({"source": "run", "path": str(run)}, data_cfg=DATA)
    assert loaded.info["sha256"] == digest  # the hash of the bytes loaded
    caps = ["a small red circle"]
    torch.testing.assert_close(loaded.encode_text(caps).pooled, clip.encode_text(caps).pooled)
    bad, _, _ = _clip_stage_run(tmp_path / "b", sha256="0" * 64)
    with pytest.raises(UserError, match="damaged or was changed") as e:
        build_clip({"source": "run", "path": str(bad)}, data_cfg=DATA)
    assert str(bad / "weights/clip.safetensors") in str(e.value) and "\n" not in str(e.value)
