"""The config tree (issue 2 item 2): every option of every group composes, keys are documented,
Hydra's own settings keep outputs in the run dir, and the SLURM launcher preset composes."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from ldm_vs_gan.train import CONFIG_DIR, config_groups  # registers the `unique` resolver

GROUPS = config_groups()
OPTIONS = [(g, o) for g, opts in GROUPS.items() for o in opts]


def _compose(overrides, hydra=False):
    with initialize_config_dir(str(CONFIG_DIR), version_base="1.3", job_name="train"):
        return compose("train", overrides=overrides, return_hydra_config=hydra)


def test_groups_are_discovered():
    for group in ("model", "data", "clip", "autoencoder", "trainer", "logger", "experiment"):
        assert group in GROUPS
    assert {"default", "smoke"} <= set(GROUPS["trainer"]) and {"wandb", "none"} <= set(GROUPS["logger"])


def test_defaults_compose():
    cfg = _compose([])
    for key in ("seed", "run_dir", "init_from", "model", "data", "clip", "autoencoder", "trainer", "logger"):
        assert key in cfg, key


@pytest.mark.parametrize("group,option", OPTIONS, ids=[f"{g}={o}" for g, o in OPTIONS])
def test_every_group_option_composes(group, option):
    # other groups at their defaults, except the family: the engine's test family always exists
    base = [] if group in ("model", "experiment") else ["model=regress"]
    cfg = _compose([*base, f"{group}={option}"])
    OmegaConf.to_container(cfg, resolve=True)  # every interpolation resolves
    if group == "model":
        assert cfg.model.name and cfg.model._target_, "a family config needs name and _target_"
    if group in ("trainer", "logger", "data"):
        assert cfg[group].get("name", option) is not None


def test_trainer_options_have_every_default_key():
    base = _compose(["model=regress", "trainer=default"]).trainer
    for option in GROUPS["trainer"]:
        t = _compose(["model=regress", f"trainer={option}"]).trainer
        assert set(t.keys()) == set(base.keys()), option


MY_FILES = [
    *sorted((CONFIG_DIR / "trainer").glob("*.yaml")),
    *sorted((CONFIG_DIR / "logger").glob("*.yaml")),
    *sorted((CONFIG_DIR / "hydra").rglob("*.yaml")),
    CONFIG_DIR / "model" / "regress.yaml",
    CONFIG_DIR / "train.yaml",
]


@pytest.mark.parametrize("path", MY_FILES, ids=[str(p.relative_to(CONFIG_DIR)) for p in MY_FILES])
def test_every_key_is_commented(path: Path):
    """Each key line has a comment on the line(s) above it or at its end (lists and the defaults
    list excepted); the engine's config files are held to it."""
    lines = path.read_text().splitlines()
    in_defaults = False
    for i, line in enumerate(lines):
        m = re.match(r"^(\s*)([A-Za-z_][\w]*):", line)
        if not m:
            continue
        if m.group(2) == "defaults" and not m.group(1):
            in_defaults = True
            continue
        if not m.group(1):
            in_defaults = False
        if in_defaults:
            continue
        above = lines[i - 1].strip() if i else ""
        assert "#" in line or above.startswith("#"), f"{path.name}:{i + 1}: key {m.group(2)!r} has no comment"


def test_hydra_outputs_stay_in_run_dir():
    cfg = _compose(["model=regress", "run_dir=/tmp/somewhere"], hydra=True)
    assert cfg.hydra.run.dir == "/tmp/somewhere"
    assert cfg.hydra.job.chdir is False
    assert "file" not in cfg.hydra.job_logging.get("handlers", {})  # no train.log per rank


def test_sweep_dirs_are_unique_within_one_second():
    a = _compose(["model=regress"], hydra=True).hydra.sweep.dir
    b = _compose(["model=regress"], hydra=True).hydra.sweep.dir
    assert a != b and re.search(r"multirun/\d{4}-\d\d-\d\d_\d\d-\d\d-\d\d-\d+-[0-9a-f]{6}$", a)


def test_slurm_launcher_preset():
    """Composes with the optional extra, which `make install` installs (`pip install -e '.[dev,slurm]'`):
    a missing launcher here is a broken test environment, so it fails rather than skips."""
    try:
        found = importlib.util.find_spec("hydra_plugins.hydra_submitit_launcher") is not None
    except ModuleNotFoundError:
        found = False
    assert found, "hydra-submitit-launcher (extra 'slurm') is not installed: run `make install`"
    cfg = _compose(["hydra/launcher=slurm"], hydra=True)
    assert "submitit" in cfg.hydra.launcher._target_ and cfg.hydra.launcher.signal_delay_s == 120
