"""``source: toy`` for ``clip`` and ``autoencoder``: the toy world's CLIP / VAE stage, trained once, cached.

:func:`ensure_stage` (called by the toy preparer, ``toy/prepare.py``, before a run that uses
``clip=toy`` or ``autoencoder=toy``) trains the stage (``model=clip`` / ``model=vae``) with its
default config (``configs/model/<stage>.yaml``, budget from ``configs/trainer/<stage>_stage.yaml``)
when none is cached for this toy world, saying so on stderr with the engine's progress bar, into
``<cache>/stages/<stage>-<key>/`` (a normal run directory). :func:`find_stage` only looks it up:
the weight source's ``build`` uses it, so building a component never trains. The key hashes
everything that makes the stage: the world's parameters, the stage's model and trainer config, the
seed. So ``python -m ldm_vs_gan.train model=ldm`` works on a fresh machine with nothing but the
package.

Concurrency: one file lock per stage key; a second process (another run, or the other DDP rank)
waits, then finds the finished stage. The training runs in a child process with the launcher's
DDP variables removed, so a ``torchrun`` job trains the stage once, single-process, instead of
entangling it with its own process group; an interrupted first use resumes from the stage's
checkpoint the next time.
"""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
import time
from dataclasses import is_dataclass
from pathlib import Path

from omegaconf import OmegaConf, open_dict

from ldm_vs_gan.errors import UserError
from ldm_vs_gan.paths import cache_dir, params_key

DONE = "STAGE_DONE.json"
_DDP_VARS = (
    "RANK",
    "LOCAL_RANK",
    "WORLD_SIZE",
    "LOCAL_WORLD_SIZE",
    "GROUP_RANK",
    "ROLE_RANK",
    "MASTER_ADDR",
    "MASTER_PORT",
    "TORCHELASTIC_RUN_ID",
    "TORCHELASTIC_RESTART_COUNT",
)


def _config_dir() -> Path:
    from ldm_vs_gan.train import CONFIG_DIR

    return Path(CONFIG_DIR)


def _compose(overrides: list[str]):
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    if GlobalHydra.instance().is_initialized():  # inside a Hydra app (train.py): same config tree
        return compose("train", overrides=overrides)
    with initialize_config_dir(config_dir=str(_config_dir()), version_base=None):
        return compose("train", overrides=overrides)


def _data_identity(data_cfg) -> dict:
    """What in the data config determines the stage's training data: the world."""
    from ldm_vs_gan.toy.world import world_params

    return {"name": "toy", "world": world_params(data_cfg)}


def stage_config(kind: str, comp_cfg, data_cfg):
    """The full config of the toy stage ``kind`` (``clip`` | ``vae``) for this data."""
    extra = []
    if comp_cfg is not None:
        if not is_dataclass(comp_cfg):
            from ldm_vs_gan.components.config import read_autoencoder, read_clip

            comp_cfg = (read_clip if kind == "clip" else read_autoencoder)(comp_cfg)
        extra = list(getattr(comp_cfg, "stage_overrides", None) or [])
    base = [f"model={kind}", "logger=none"]
    # model=<kind> picks its budget preset (configs/trainer/<kind>_stage.yaml); stage_overrides win.
    cfg = _compose(base + extra)
    with open_dict(cfg):
        cfg.data = OmegaConf.create(
            OmegaConf.to_container(data_cfg, resolve=True)
            if OmegaConf.is_config(data_cfg)
            else dict(data_cfg)
        )
        cfg.seed = int(cfg.get("seed", 0))
    return cfg


def stage_key(kind: str, cfg) -> str:
    t = cfg.trainer
    return params_key(
        {
            "kind": kind,
            "data": _data_identity(cfg.data),
            # where the Family class lives is not what makes the stage
            "model": {
                k: v for k, v in OmegaConf.to_container(cfg.model, resolve=True).items() if k != "_target_"
            },
            "trainer": {
                k: OmegaConf.to_container(t, resolve=True).get(k)
                for k in ("max_images", "batch_size", "accumulate", "warmup_images", "precision")
            },
            "seed": int(cfg.seed),
        }
    )


_KEY = {"clip": "clip", "vae": "autoencoder"}


def _stage_dir(kind: str, comp_cfg, data_cfg):
    """(full stage config, its run dir) of the toy stage ``kind`` for ``data_cfg``."""
    from ldm_vs_gan.data.config import name_of

    if name_of(data_cfg) != "toy":
        raise UserError(
            f"{_KEY[kind]}.source=toy is the toy world's {kind.upper()}, but data.name is "
            f"{name_of(data_cfg)!r}: train a stage on your data (python -m ldm_vs_gan.train "
            f"model={kind} data=...) and give it as {_KEY[kind]}=run {_KEY[kind]}.path=RUN_DIR"
        )
    cfg = stage_config(kind, comp_cfg, data_cfg)
    from ldm_vs_gan.toy import config

    root = cache_dir("stages", root=config.read(data_cfg).cache_dir)
    return cfg, root / f"{kind}-{stage_key(kind, cfg)}"


def find_stage(kind: str, comp_cfg, data_cfg) -> Path:
    """Run dir of the finished toy stage ``kind`` (``clip`` | ``vae``); an error saying how to
    make it when it is not there."""
    _, run_dir = _stage_dir(kind, comp_cfg, data_cfg)
    if not (run_dir / DONE).is_file():
        raise UserError(
            f"the toy {kind.upper()} for this toy world is not trained yet ({run_dir}): training "
            f"and evaluation train it first; from Python call "
            f"ldm_vs_gan.toy.stages.ensure_stage({kind!r}, cfg.{_KEY[kind]}, cfg.data)"
        )
    return run_dir


def ensure_stage(kind: str, comp_cfg, data_cfg) -> Path:
    """Run dir of the finished toy stage ``kind``: cached, or trained now (once per key: a file
    lock makes another process, or the other DDP rank, wait and then find it)."""
    cfg, run_dir = _stage_dir(kind, comp_cfg, data_cfg)
    if (run_dir / DONE).is_file():
        return run_dir
    with open(run_dir.with_name(run_dir.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if (run_dir / DONE).is_file():
                return run_dir
            with open_dict(cfg):
                cfg.run_dir = str(run_dir)
            _train_stage(kind, cfg, run_dir)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    return run_dir


def _train_stage(kind: str, cfg, run_dir: Path) -> None:
    n = int(cfg.trainer.max_images)
    print(
        f"ldm_vs_gan: no toy {kind.upper()} is cached for this toy world: training it now "
        f"(model={kind}, {n} images; a few minutes on a CPU, once) into {run_dir}",
        file=sys.stderr,
        flush=True,
    )
    run_dir.mkdir(parents=True, exist_ok=True)
    cfg_file = run_dir.parent / f"{run_dir.name}.stage.yaml"
    OmegaConf.save(OmegaConf.create(OmegaConf.to_container(cfg, resolve=True)), cfg_file)
    env = {k: v for k, v in os.environ.items() if k not in _DDP_VARS}
    t0 = time.time()
    proc = subprocess.run([sys.executable, "-m", "ldm_vs_gan.toy.stages", str(cfg_file)], env=env)
    if proc.returncode != 0:
        raise UserError(
            f"training the toy {kind} stage failed (exit {proc.returncode}); its run dir is "
            f"{run_dir} (it resumes next time). Train it by hand to see why: "
            f"python -m ldm_vs_gan.train model={kind} run_dir={run_dir}"
        )
    from ldm_vs_gan.training.checkpoint import atomic_write_bytes

    atomic_write_bytes(
        run_dir / DONE, (json.dumps({"seconds": round(time.time() - t0, 1), "max_images": n}) + "\n").encode()
    )
    print(
        f"ldm_vs_gan: toy {kind.upper()} ready ({time.time() - t0:.0f} s): {run_dir}",
        file=sys.stderr,
        flush=True,
    )


def _main(argv: list[str]) -> int:
    """Child process: train the stage whose full config is in ``argv[0]``."""
    from ldm_vs_gan.training import run

    try:
        run(OmegaConf.load(argv[0]))
    except UserError as e:
        print(f"error: {e}", file=sys.stderr, flush=True)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
