"""The data room's schemas (ldm_vs_gan/data/config.py; the toy world's in ldm_vs_gan/toy/config.py) are the one source of the ``data`` defaults:
every ``data=`` option composes and reads, the schema's fields are exactly the YAML's keys, a node
without a key gets the shipped YAML value, and a bad value is one line naming ``data.<key>``."""

from __future__ import annotations

import dataclasses

import pytest
from omegaconf import OmegaConf
from support.configs import compose_train

from ldm_vs_gan import data, schema
from ldm_vs_gan.data import config
from ldm_vs_gan.errors import ConfigError
from ldm_vs_gan.train import CONFIG_DIR, config_groups

OPTIONS = config_groups()["data"]


def _compose(overrides):
    return compose_train(["model=regress", *overrides])


def _yaml(option):
    return OmegaConf.to_container(OmegaConf.load(CONFIG_DIR / "data" / f"{option}.yaml"), resolve=True)


def test_every_source_has_a_schema():
    # the built-in sources and the toy world's, which plugs in through ldm_vs_gan.plugins
    assert set(OPTIONS) == set(config.schemas()) == set(data.sources()) == {*data.SOURCES, "toy"}


@pytest.mark.parametrize("option", OPTIONS)
def test_every_option_composes_and_reads(option):
    cfg = _compose([f"data={option}"])
    typed = schema.read(config.schemas()[option], cfg.data, "data")
    assert typed.name == option
    data.check_config(cfg.data)  # what the trainer runs before any work
    read = OmegaConf.to_container(OmegaConf.structured(typed))
    assert {k: read[k] for k in _yaml(option)} == _yaml(option)


@pytest.mark.parametrize("option", OPTIONS)
def test_schema_fields_are_the_yaml_keys_and_defaults_are_its_values(option):
    shipped = _yaml(option)
    defaults = OmegaConf.to_container(OmegaConf.structured(config.schemas()[option]))
    assert {k: defaults.get(k) for k in shipped} == shipped  # same values (nested judge included)
    # keys the YAML leaves out are the shared decode keys (toy.yaml does not filter images)
    assert set(defaults) - set(shipped) <= {f.name for f in dataclasses.fields(config.DataConfig)}
    for key in shipped:  # a node without the key gets the shipped value
        node = {k: v for k, v in shipped.items() if k != key}
        assert getattr(schema.read(config.schemas()[option], node, "data"), key) == getattr(
            schema.read(config.schemas()[option], shipped, "data"), key
        ), key


def test_partial_nodes_get_the_defaults_and_null_means_unset():
    c = config.read({"name": "laion", "shards": "x.tar", "resolution": 32})
    assert (c.resolution, c.min_size, c.max_aspect, c.num_workers, c.mode) == (32, 64, 3.0, 4, "auto")
    t = config.read({"n_train": 10, "resolution": None, "judge": {"width": 4}}, "toy")
    assert (t.resolution, t.layout, t.judge.width, t.judge.epochs) == (32, "aligned", 4, 2)


@pytest.mark.parametrize("option", OPTIONS)
def test_bad_type_and_unknown_key_are_one_line_naming_the_key(option):
    cfg = _compose([f"data={option}", "data.resolution=abc"])
    with pytest.raises(ConfigError) as e:
        data.check_config(cfg.data)
    assert "data.resolution" in str(e.value) and "\n" not in str(e.value)
    cfg = _compose([f"data={option}", "+data.bogus=1"])
    with pytest.raises(ConfigError) as e:
        data.check_config(cfg.data)
    assert "data.bogus is not a known key" in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize(
    "option,override,needle",
    [
        ("toy", "data.hflip=true", "data.hflip=True"),
        ("toy", "data.layout=diagonal", "data.layout='diagonal'"),
        ("toy", "data.judge.epochs=x", "data.judge.epochs"),
        ("laion", "data.mode=fast", "data.mode='fast'"),
        ("laion", "data.caption=csv", "data.caption='csv'"),
        ("laion", "data.shuffle_buffer=-1", "data.shuffle_buffer=-1"),
        ("coco", "data.year=2015", "data.year=2015"),
        ("folder", "data.crop=top", "data.crop='top'"),
        ("folder", "data.max_aspect=0.5", "data.max_aspect=0.5"),
    ],
)
def test_checks_name_the_key(option, override, needle):
    with pytest.raises(ConfigError) as e:
        data.check_config(_compose([f"data={option}", override]).data)
    assert needle in str(e.value) and "\n" not in str(e.value)


def test_unknown_source_is_left_to_the_loader():
    data.check_config({"name": "standin", "resolution": 8})  # the engine tests' stand-in data
    with pytest.raises(ConfigError, match="data.name='standin'"):
        data.heldout_batch({"name": "standin"}, 1)
