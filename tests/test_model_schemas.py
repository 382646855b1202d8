"""The families' typed model nodes (ldm/config.py, galip/config.py) are the single source of
their defaults: every shipped model config and preset reads, a missing key gets the schema
default (which equals the shipped YAML value), and a wrong type or unknown key is one line
naming the full key."""

from __future__ import annotations

import dataclasses

import pytest
from omegaconf import OmegaConf
from support.configs import compose_train as _compose
from support.configs import leaves as _leaves

from ldm_vs_gan import schema
from ldm_vs_gan.errors import ConfigError
from ldm_vs_gan.galip.config import GALIPConfig
from ldm_vs_gan.ldm.config import LDMConfig
from ldm_vs_gan.train import CONFIG_DIR

SCHEMAS = {"ldm": LDMConfig, "galip": GALIPConfig}
PRESETS = {"ldm": ["ldm_tiny", "ldm_thesis", "ldm_sd"], "galip": ["galip_tiny", "galip_thesis", "galip_coco"]}
CASES = [(m, p) for m, ps in PRESETS.items() for p in [None, *ps]]


def _model(model, preset=None):
    return _compose([f"model={model}", *([f"experiment={preset}"] if preset else [])]).model


def test_every_model_config_with_a_schema_is_covered():
    experiments = {p.stem for p in (CONFIG_DIR / "experiment").glob("*.yaml")}
    for model in SCHEMAS:
        assert (CONFIG_DIR / "model" / f"{model}.yaml").exists()
        assert {e for e in experiments if e.startswith(model + "_")} == set(PRESETS[model])


@pytest.mark.parametrize("model,preset", CASES, ids=[f"{m}-{p or 'default'}" for m, p in CASES])
def test_composed_node_reads_to_the_same_values(model, preset):
    node = _model(model, preset)
    typed = schema.read(SCHEMAS[model], node, "model")
    # every composed key is a schema field and keeps its value
    composed = OmegaConf.to_container(node, resolve=True)
    read = dataclasses.asdict(typed)
    assert dict(_leaves(read)) == dict(_leaves(composed))


@pytest.mark.parametrize("model", SCHEMAS)
def test_schema_defaults_are_the_shipped_yaml(model):
    shipped = OmegaConf.to_container(_model(model), resolve=True)
    defaults = dataclasses.asdict(schema.read(SCHEMAS[model], None, "model"))
    assert defaults == shipped
    # a node missing keys gets the schema defaults: drop one key of every sub-node
    for key, value in _leaves(shipped):
        head, _, leaf = key.rpartition(".")
        node = OmegaConf.create(shipped)
        parent = OmegaConf.select(node, head) if head else node
        del parent[leaf]
        got = schema.read(SCHEMAS[model], node, "model")
        assert dict(_leaves(dataclasses.asdict(got)))[key] == value, key


@pytest.mark.parametrize(
    "model,override,key",
    [
        ("ldm", "model.optim.lr=abc", "model.optim.lr"),
        ("ldm", "model.sampling.steps=many", "model.sampling.steps"),
        ("ldm", "+model.optim.lrr=1", "model.optim.lrr"),
        ("ldm", "+model.unet.width=3", "model.unet.width"),
        ("galip", "model.optim.lr_g=abc", "model.optim.lr_g"),
        ("galip", "model.generator.ngf=wide", "model.generator.ngf"),
        ("galip", "+model.loss.extra=1", "model.loss.extra"),
        ("galip", "+model.zdim=3", "model.zdim"),
    ],
)
def test_wrong_type_and_unknown_key_are_one_line_naming_the_key(model, override, key):
    node = _compose([f"model={model}", override]).model
    with pytest.raises(ConfigError) as ex:
        schema.read(SCHEMAS[model], node, "model")
    msg = str(ex.value)
    assert "\n" not in msg and msg.startswith(key), msg


@pytest.mark.parametrize(
    "model,override,match",
    [
        ("ldm", "model.diffusion.target=eps2", "model.diffusion.target"),
        ("ldm", "model.optim.name=sgd", "model.optim.name"),
        ("ldm", "model.optim.betas=[0.9]", "model.optim.betas"),
        ("ldm", "model.conditioning.caption_dropout=1.0", "model.conditioning.caption_dropout"),
        ("ldm", "model.sampling.sampler=heun9", "model.sampling.sampler"),
        ("ldm", "model.sampling.steps=0", "model.sampling.steps"),
        ("galip", "model.augment.translation=0.5", "model.augment.translation"),
        ("galip", "model.loss.mode_seeking=-1", "model.loss.mode_seeking"),
        ("galip", "model.optim.betas=[0.0]", "model.optim.betas"),
    ],
)
def test_checks_refuse_bad_values(model, override, match):
    node = _compose([f"model={model}", override]).model
    with pytest.raises(ConfigError, match=match):
        schema.read(SCHEMAS[model], node, "model")
