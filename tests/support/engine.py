"""Engine test helpers: configs of the regress family on the stand-in data, and the runner the
subprocess tests (DDP, signals) start (``tests/test_engine_support.py``)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import torch
from omegaconf import OmegaConf

from support import standin_data
from support.standin_data import RES

REPO = Path(__file__).resolve().parents[2]
CONFIGS = REPO / "configs"

__all__ = ["CONFIGS", "REPO", "RES", "main", "make_cfg", "subprocess_env", "trainer_cfg", "write_cfg"]


def trainer_cfg(name: str = "smoke"):
    """A trainer group option with its defaults list applied (default.yaml + the option)."""
    base = OmegaConf.load(CONFIGS / "trainer" / "default.yaml")
    if name != "default":
        over = OmegaConf.load(CONFIGS / "trainer" / f"{name}.yaml")
        over.pop("defaults", None)
        base = OmegaConf.merge(base, over)
    return base


def make_cfg(run_dir, **overrides):
    """Config of the regress family on the stand-in data with trainer=smoke, logger=none;
    ``overrides`` are dotted keys (``trainer.max_images=64``)."""
    cfg = OmegaConf.create(
        {
            "seed": 0,
            "run_dir": str(run_dir),
            "init_from": None,
            "model": OmegaConf.load(CONFIGS / "model" / "regress.yaml"),
            "data": {"name": "standin", "resolution": RES},
            "trainer": trainer_cfg("smoke"),
            "logger": {"name": "none"},
        }
    )
    cfg.trainer.eval_every = 0  # the metrics room's quick_eval needs the toy world, not the stand-in
    for k, v in overrides.items():
        OmegaConf.update(cfg, k, v, force_add=True)
    return cfg


def write_cfg(cfg, path) -> Path:
    path = Path(path)
    path.write_text(OmegaConf.to_yaml(cfg))
    return path


def subprocess_env() -> dict:
    """Environment of a child process that runs the runner or imports the tests' helpers."""
    env = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", WANDB_MODE="offline")
    env["PYTHONPATH"] = os.pathsep.join([str(REPO / "tests"), str(REPO), env.get("PYTHONPATH", "")])
    return env


def main(cfg_paths: list[str]) -> None:
    """Train each config in turn on the stand-in data (several configs share one process
    start-up), reporting like ``ldm_vs_gan.train``: UserError -> one line, exit 2."""
    from ldm_vs_gan.errors import UserError
    from ldm_vs_gan.training import run
    from ldm_vs_gan.training.guards import EXIT_STOPPED, StoppedEarly

    torch.set_num_threads(1)
    try:
        for cfg_path in cfg_paths:
            run(OmegaConf.load(cfg_path), data=standin_data)
    except UserError as ex:
        print(f"error: {ex}", file=sys.stderr, flush=True)
        sys.exit(2)
    except StoppedEarly as ex:
        print(f"stopped: {ex}", file=sys.stderr, flush=True)
        sys.exit(EXIT_STOPPED)
