"""``python -m ldm_vs_gan.train [overrides]``: compose the config with Hydra and run the loop.

    python -m ldm_vs_gan.train model=ldm trainer.max_images=200000 run_dir=runs/ldm-a
    python -m ldm_vs_gan.train --cfg job model=galip          # print the composed config
    torchrun --standalone --nproc_per_node=2 -m ldm_vs_gan.train model=ldm   # DDP (gloo on CPU)
    python -m ldm_vs_gan.train -m seed=0,1,2                  # multirun: one folder per job
    python -m ldm_vs_gan.train -m hydra/launcher=slurm ...    # SLURM (pip install -e '.[slurm]')

Where the configs are: ``configs/`` at the top of the repository, found relative to this file
(``<repo>/ldm_vs_gan/../configs``), which is where it is for a checkout and for ``pip install -e .``.
For any other layout point ``LDM_VS_GAN_CONFIG_DIR`` at a config tree.

Exit status: 0 when the budget is done; 2 with one line on stderr for every error the user can
fix: an unknown group option (``model=nope``: the allowed options are the files in
``configs/model/``), an override Hydra cannot apply (unknown key, bad syntax), a run dir that is
a file or in use by another training, and every :class:`ldm_vs_gan.errors.UserError` raised while
building or training; 75 when SIGTERM or SIGINT stopped the run early after writing a checkpoint
(resumable: launch the same command again; a requeue script requeues on 75 only).
"""

from __future__ import annotations

import os
import sys
import uuid
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf, open_dict

from ldm_vs_gan.errors import UserError, bad_value

CONFIG_DIR = Path(
    os.environ.get("LDM_VS_GAN_CONFIG_DIR") or Path(__file__).resolve().parent.parent / "configs"
)

# Sweep folders: `now` has second resolution, so two sweeps started in the same second would share
# a folder (Hydra 1.3). `unique` adds pid + random id; use_cache=True keeps it fixed within a
# sweep (Hydra copies resolver caches from the sweep config to every job config).
if not OmegaConf.has_resolver("unique"):
    OmegaConf.register_new_resolver("unique", lambda: f"{os.getpid()}-{uuid.uuid4().hex[:6]}", use_cache=True)


def fail(message: str) -> None:
    print(f"error: {message}", file=sys.stderr, flush=True)
    sys.exit(2)


def config_groups(config_dir: Path = CONFIG_DIR) -> dict[str, list[str]]:
    """The group options, from the files: ``{"model": ["galip", "ldm", ...], ...}`` (not hydra/)."""
    return {
        d.name: sorted(p.stem for p in d.glob("*.yaml"))
        for d in sorted(config_dir.iterdir())
        if d.is_dir() and d.name != "hydra"
    }


def _one_line(ex: BaseException) -> str:
    from hydra.errors import MissingConfigException

    if isinstance(ex, MissingConfigException) and ex.options is not None:
        return f"config {ex.missing_cfg_file!r} not found; choose one of: {', '.join(ex.options)}"
    lines = [ln.strip() for ln in str(ex).splitlines() if ln.strip()]
    keep = [
        ln
        for ln in lines
        if not ln.startswith(("full_key:", "object_type", "reference_type", "Set the environment"))
    ]
    return "; ".join(keep[:3]) or type(ex).__name__


def prevalidate(argv: list[str], config_dir: Path = CONFIG_DIR) -> None:
    """Check the command line before Hydra sees it, so mistakes are one line, not Hydra's
    multi-line report: group options against the files, then (single runs) a full composition."""
    from hydra._internal.utils import get_args_parser

    if not config_dir.is_dir():
        fail(f"config folder {str(config_dir)!r} not found; set LDM_VS_GAN_CONFIG_DIR to the repo's configs/")
    try:
        args = get_args_parser().parse_args(argv)
    except SystemExit:
        raise
    if args.multirun or args.help or args.hydra_help or args.info or args.shell_completion:
        try:
            check_groups(args.overrides, multirun=args.multirun, config_dir=config_dir)
        except UserError as ex:
            fail(str(ex))
        return
    try:
        cfg = compose_config(args.overrides, config_dir)
        run_dir = str(cfg.run_dir)
    except UserError as ex:
        fail(str(ex))
    except Exception as ex:  # an interpolation in run_dir that cannot be resolved
        fail(_one_line(ex))
    check_values(cfg)
    check_run_dir(Path(run_dir))


def check_groups(overrides: list[str], *, multirun: bool = False, config_dir: Path = CONFIG_DIR) -> None:
    """Every group option on the command line (``model=nope``) against the files of its group:
    a :class:`ConfigError` naming the group and its options."""
    groups = config_groups(config_dir)
    for ov in overrides:
        if "=" not in ov:
            continue
        key, value = ov.split("=", 1)
        key = key.lstrip("+~")
        if key not in groups:
            continue
        for v in value.split(",") if multirun else [value]:
            v = v.strip()
            if v not in groups[key] and not (v == "null" and key == "experiment"):
                raise bad_value(key, v, groups[key])


def compose_config(
    overrides: list[str], config_dir: Path = CONFIG_DIR, job_name: str = "train"
) -> DictConfig:
    """The composed ``train`` config of ``overrides`` (as Hydra composes it for a single run),
    or a :class:`UserError` of one line (unknown group option or key, bad syntax)."""
    from hydra import compose, initialize_config_dir

    check_groups(overrides, config_dir=config_dir)
    try:
        with initialize_config_dir(str(config_dir), version_base="1.3", job_name=job_name):
            return compose("train", overrides=list(overrides))
    except Exception as ex:  # Hydra/OmegaConf composition errors: unknown keys, syntax, interpolation
        raise UserError(_one_line(ex)) from None


def check_values(cfg) -> None:
    """The trainer's and the data's value checks, before Hydra creates the run dir (a refused
    value leaves nothing behind); the trainer runs them again, for callers of ``run``."""
    from ldm_vs_gan import data
    from ldm_vs_gan.distributed import env_world_size
    from ldm_vs_gan.training import settings

    try:
        settings.read(cfg, env_world_size())
        data.check_config(cfg.data)
    except UserError as ex:
        fail(str(ex))


def check_run_dir(path: Path) -> None:
    """Hydra creates the run dir before any of our code runs: say what is wrong with it first."""
    if path.exists() and not path.is_dir():
        fail(f"run_dir={str(path)!r} is a file, not a folder; choose another run_dir")
    parent = next((p for p in [path, *path.parents] if p.exists()), Path("."))
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        fail(f"run_dir={str(path)!r} cannot be created or written ({str(parent)!r} is not writable)")


@hydra.main(config_path=str(CONFIG_DIR), config_name="train", version_base="1.3")
def _main(cfg: DictConfig) -> None:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    from ldm_vs_gan.training import run

    hc = HydraConfig.get()
    explicit = any(o.split("=", 1)[0].lstrip("+~") == "run_dir" for o in hc.overrides.task)
    if hc.mode == RunMode.MULTIRUN and not explicit:
        with open_dict(cfg):
            cfg.run_dir = hc.runtime.output_dir  # each sweep job trains in its own folder
    from ldm_vs_gan.training.guards import EXIT_STOPPED, StoppedEarly

    try:
        run(cfg)
    except UserError as ex:
        fail(str(ex))
    except StoppedEarly as ex:
        print(f"stopped: {ex}", file=sys.stderr, flush=True)
        sys.exit(EXIT_STOPPED)


def main() -> None:
    prevalidate(sys.argv[1:])
    _main()


if __name__ == "__main__":
    main()
