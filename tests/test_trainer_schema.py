"""The trainer and logger schemas (training/config.py) are the single source of their defaults:
every shipped trainer preset (alone and with each model that picks one) and every logger option
reads, a missing key gets the default.yaml value, and a wrong type, a refused value or an unknown
key is one line naming the full key."""

from __future__ import annotations

import dataclasses

import pytest
from omegaconf import OmegaConf
from support.configs import compose_train as _compose
from support.configs import leaves as _leaves

from ldm_vs_gan import schema
from ldm_vs_gan.errors import ConfigError
from ldm_vs_gan.train import CONFIG_DIR, config_groups
from ldm_vs_gan.training import settings
from ldm_vs_gan.training.config import LoggerConfig, TrainerConfig

GROUPS = config_groups()
# the model configs that pick their own trainer preset (`override /trainer...: <preset>`)
PICKS = sorted(p.stem for p in (CONFIG_DIR / "model").glob("*.yaml") if "override /trainer" in p.read_text())
TRAINER_CASES = [(m, t) for m in ["regress", *PICKS] for t in [None, *GROUPS["trainer"]]]


def test_models_that_pick_a_trainer_are_found():
    assert {"ldm", "galip", "clip", "vae"} <= set(PICKS)
    assert {"default", "smoke", "ldm", "galip", "clip_stage", "vae_stage"} <= set(GROUPS["trainer"])


@pytest.mark.parametrize(
    "model,trainer", TRAINER_CASES, ids=[f"{m}-{t or 'picked'}" for m, t in TRAINER_CASES]
)
def test_composed_trainer_reads_to_the_same_values(model, trainer):
    cfg = _compose([f"model={model}", *([f"trainer={trainer}"] if trainer else [])])
    typed = schema.read(TrainerConfig, cfg.trainer, "trainer")
    composed = OmegaConf.to_container(cfg.trainer, resolve=True)
    assert dict(_leaves(dataclasses.asdict(typed))) == dict(_leaves(composed))
    s = settings.read(cfg, world_size=1)
    assert (s.max_images, s.eval_n, s.ema_decay) == (typed.max_images, typed.eval.n, typed.ema.decay)


def test_trainer_defaults_are_default_yaml():
    shipped = OmegaConf.to_container(OmegaConf.load(CONFIG_DIR / "trainer" / "default.yaml"), resolve=True)
    defaults = dataclasses.asdict(schema.read(TrainerConfig, None, "trainer"))
    assert dict(_leaves(defaults)) == dict(_leaves(shipped))
    # a node missing one key (of any sub-node) gets the default.yaml value
    for key, value in _leaves(shipped):
        head, _, leaf = key.rpartition(".")
        node = OmegaConf.create(shipped)
        parent = OmegaConf.select(node, head) if head else node
        del parent[leaf]
        got = schema.read(TrainerConfig, node, "trainer")
        assert dict(_leaves(dataclasses.asdict(got)))[key] == value, key


def test_settings_of_an_empty_trainer_node_are_default_yaml():
    s = settings.read(OmegaConf.create({"trainer": {}, "logger": {"name": "none"}}), world_size=1)
    assert (s.eval_n, s.eval_batch_size, s.max_images, s.keep_checkpoints) == (256, 64, 1_000_000, 3)


@pytest.mark.parametrize("option", GROUPS["logger"])
def test_every_logger_option_reads(option):
    node = _compose(["model=regress", f"logger={option}"]).logger
    typed = schema.read(LoggerConfig, node, "logger")
    assert typed.name == option
    composed = OmegaConf.to_container(node, resolve=True)
    assert {k: v for k, v in dataclasses.asdict(typed).items() if k in composed} == composed


def test_logger_defaults_are_wandb_yaml():
    shipped = OmegaConf.to_container(OmegaConf.load(CONFIG_DIR / "logger" / "wandb.yaml"))
    defaults = dataclasses.asdict(schema.read(LoggerConfig, None, "logger"))
    assert defaults == {**shipped, "name": "none"}  # a missing logger node is logger=none


@pytest.mark.parametrize(
    "override,key",
    [
        ("trainer.max_images=abc", "trainer.max_images"),
        ("trainer.ema.decay=2", "trainer.ema.decay"),
        ("+trainer.nope=1", "trainer.nope"),
        ("+trainer.ema.nope=1", "trainer.ema.nope"),
        ("trainer.eval.batch_size=0", "trainer.eval.batch_size"),
        ("trainer.sample.n=-1", "trainer.sample.n"),
        ("trainer.device=tpu", "trainer.device"),
        ("trainer.precision=fp8", "trainer.precision"),
        ("trainer.keep_checkpoints=-1", "trainer.keep_checkpoints"),
        ("logger.name=tensorboard", "logger.name"),
        ("+logger.nope=1", "logger.nope"),
    ],
)
def test_bad_values_are_one_line_naming_the_key(override, key):
    cfg = _compose(["model=ldm", "logger=wandb", override])
    with pytest.raises(ConfigError) as ex:
        settings.read(cfg, world_size=1)
    msg = str(ex.value)
    assert "\n" not in msg and msg.startswith(key), msg
