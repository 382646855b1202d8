"""The typed nodes (components/config.py, toy/config.py, stages/config.py) are the single source
of the defaults of ``clip``, ``autoencoder`` and the stage families ``model=clip`` / ``model=vae``: every shipped
option reads to its composed values, a missing key gets the shipped value, and a wrong type or
unknown key is one line naming the full key."""

from __future__ import annotations

import dataclasses

import pytest
from omegaconf import OmegaConf
from support.configs import compose_train as _compose

from ldm_vs_gan import schema
from ldm_vs_gan.components.config import (
    AUTOENCODER_FILES,
    CLIP_FILES,
    read_autoencoder,
    read_clip,
    read_whole_arch,
)
from ldm_vs_gan.errors import ConfigError
from ldm_vs_gan.stages.config import CLIPStageConfig, VAEStageConfig
from ldm_vs_gan.toy.config import ToyAutoencoder, ToyCLIP
from ldm_vs_gan.train import CONFIG_DIR

# the shipped files: the components room's, and the toy world's (a plug-in's schema)
GROUPS = {
    "clip": ({**CLIP_FILES, "toy": ToyCLIP}, read_clip),
    "autoencoder": ({**AUTOENCODER_FILES, "toy": ToyAutoencoder}, read_autoencoder),
}
OPTIONS = [(g, name) for g, (files, _) in GROUPS.items() for name in files]
STAGES = {"clip": CLIPStageConfig, "vae": VAEStageConfig}


def _shipped(group, name) -> dict:
    return OmegaConf.to_container(_compose([f"{group}={name}"])[group], resolve=True)


def test_every_option_has_a_schema():
    for group, (files, _) in GROUPS.items():
        assert {p.stem for p in (CONFIG_DIR / group).glob("*.yaml")} == set(files), group


@pytest.mark.parametrize("group,name", OPTIONS, ids=[f"{g}={n}" for g, n in OPTIONS])
def test_option_reads_to_its_composed_values_and_defaults_are_the_yaml(group, name):
    files, read = GROUPS[group]
    shipped = _shipped(group, name)

    def keys(obj):  # a node may leave out keys of other sources: compare the file's keys
        d = dataclasses.asdict(obj)
        return {k: d[k] for k in shipped}

    assert keys(read(OmegaConf.create(shipped), group)) == shipped
    assert keys(read_whole_arch(files[name], None, group)) == shipped
    for key in shipped:  # a missing key gets the shipped value
        node = {k: v for k, v in shipped.items() if k != key}
        got = dataclasses.asdict(read_whole_arch(files[name], node, group))
        assert got[key] == shipped[key], key


@pytest.mark.parametrize("group,name", OPTIONS, ids=[f"{g}={n}" for g, n in OPTIONS])
def test_wrong_type_and_unknown_key_name_the_key(group, name):
    _, read = GROUPS[group]
    node = _compose([f"{group}={name}", f"+{group}.bogus_key=1"])[group]
    with pytest.raises(ConfigError) as ex:
        read(node, group)
    msg = str(ex.value)
    assert "\n" not in msg and msg.startswith(f"{group}.bogus_key"), msg
    node = _compose([f"{group}={name}"])[group]
    bad = "token_layer" if group == "clip" else "latent"
    node[bad] = "many" if group == "clip" else "median"
    with pytest.raises(ConfigError) as ex:
        read(node, group)
    msg = str(ex.value)
    assert "\n" not in msg and msg.startswith(f"{group}.{bad}"), msg


@pytest.mark.parametrize("group", GROUPS)
def test_unknown_source_names_the_key(group):
    """(and a shipped file may switch source with one override: its other keys stay allowed)"""
    node = _compose([f"{group}=tiny", f"{group}.source=run", f"++{group}.path=/x"])[group]
    assert GROUPS[group][1](node, group).path == "/x"
    with pytest.raises(ConfigError, match=f"{group}.source"):
        GROUPS[group][1]({"source": "ftp"}, group)


@pytest.mark.parametrize("model", STAGES)
def test_stage_model_reads_to_its_composed_values(model):
    shipped = OmegaConf.to_container(_compose([f"model={model}"]).model, resolve=True)
    cls = STAGES[model]
    assert dataclasses.asdict(read_whole_arch(cls, OmegaConf.create(shipped), "model")) == shipped
    assert dataclasses.asdict(schema.read(cls, None, "model")) == shipped
    for key in shipped:
        node = {k: v for k, v in shipped.items() if k != key}
        assert dataclasses.asdict(read_whole_arch(cls, node, "model"))[key] == shipped[key], key


def test_given_arch_keeps_exactly_its_keys():
    arch = {"embed_dim": 8, "vision_cfg": {"width": 8}, "text_cfg": {"width": 8}}
    got = read_whole_arch(CLIPStageConfig, {"arch": arch}, "model")
    assert got.arch == arch


@pytest.mark.parametrize(
    "model,override,key",
    [
        ("clip", "model.lr=abc", "model.lr"),
        ("clip", "model.ema=maybe", "model.ema"),
        ("clip", "+model.lrr=1", "model.lrr"),
        ("vae", "model.kl=abc", "model.kl"),
        ("vae", "+model.arch2=1", "model.arch2"),
        ("vae", "model.betas=[0.9]", "model.betas"),
    ],
)
def test_stage_wrong_type_and_unknown_key_name_the_key(model, override, key):
    node = _compose([f"model={model}", override]).model
    with pytest.raises(ConfigError) as ex:
        read_whole_arch(STAGES[model], node, "model")
    msg = str(ex.value)
    assert "\n" not in msg and msg.startswith(key), msg
