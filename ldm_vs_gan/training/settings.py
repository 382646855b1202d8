"""``cfg.trainer`` read once into a typed object, with every check that must fail before any work.

The keys, their defaults and their checks are :class:`ldm_vs_gan.training.config.TrainerConfig`
(the single source; ``configs/trainer/default.yaml`` states the same values).

Each problem is one line naming the key, the value and what is allowed (``errors.bad_value``).
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass

from omegaconf import DictConfig

from ldm_vs_gan import schema
from ldm_vs_gan.errors import ConfigError, bad_value, require
from ldm_vs_gan.training.config import ON_NONFINITE, LoggerConfig, TrainerConfig

__all__ = ["ON_NONFINITE", "Settings", "check_optimizer_keys", "crossed", "read"]


@dataclass
class Settings:
    max_images: int
    batch_size: int  # global
    accumulate: int
    precision: str
    device: str
    warmup_images: int
    lr_decay: str
    min_lr_ratio: float
    on_nonfinite: str
    log_every: int
    sample_every: int
    eval_every: int
    ckpt_every: int
    keep_checkpoints: int
    ema_decay: float
    ema_warmup: bool
    ema_every: int
    sample_n: int
    sample_seed: int
    sample_nrow: int
    eval_n: int
    eval_batch_size: int
    progress: bool
    measure_flops: bool
    num_workers: int | None
    dist_timeout_s: float
    compile: bool
    compile_backend: str
    world_size: int

    @property
    def per_rank_batch(self) -> int:
        return self.batch_size // self.world_size

    @property
    def micro_batch(self) -> int:
        return self.per_rank_batch // self.accumulate


def _number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def check_optimizer_keys(node, prefix: str = "model") -> None:
    """Optimizer values anywhere under ``model`` (``lr``, ``lr_g``, ``betas``, ...) are checked
    before the family is built, so ``model.optim.lr=abc`` is one line, not a traceback in Adam."""
    if not isinstance(node, DictConfig):
        return
    for key in node.keys():
        v, full = node.get(key), f"{prefix}.{key}"
        if isinstance(v, DictConfig):
            check_optimizer_keys(v, full)
        elif key == "lr" or key.startswith("lr_"):
            if not (_number(v) and v >= 0):
                raise bad_value(full, v, "a number >= 0")
        elif key in ("eps", "weight_decay") or key.startswith("grad_clip"):
            if not ((_number(v) and v >= 0) or (v is None and key.startswith("grad_clip"))):
                raise bad_value(
                    full, v, "a number >= 0" + (" or null" if key.startswith("grad_clip") else "")
                )
        elif key == "betas":
            ok = v is not None and len(list(v)) == 2 and all(_number(b) and 0 <= b < 1 for b in v)
            if not ok:
                raise bad_value(full, v, "two numbers in [0, 1)")


def read(cfg: DictConfig, world_size: int) -> Settings:
    """``cfg.trainer`` read with :class:`TrainerConfig` (a missing key gets the default.yaml value;
    an unknown key, a wrong type or a refused value is one line naming ``trainer.<key>``)."""
    if "trainer" not in cfg or cfg.trainer is None:
        raise ConfigError("trainer is missing; choose a trainer config, e.g. trainer=default")
    seed = cfg.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise bad_value("seed", seed, "an integer >= 0")
    check_optimizer_keys(cfg.get("model"))
    t = schema.read(TrainerConfig, cfg.trainer, "trainer")
    logger = schema.read(LoggerConfig, cfg.get("logger"), "logger")  # before any work; runlog reads it again
    # wandb is optional (machines without it train with logger=none): say so before any work.
    require(
        logger.name != "wandb" or importlib.util.find_spec("wandb") is not None,
        "logger=wandb needs the wandb package, which is not installed here: pip install wandb, "
        "or choose logger=none (metrics.jsonl is always written)",
    )
    s = Settings(
        max_images=t.max_images,
        batch_size=t.batch_size,
        accumulate=t.accumulate,
        precision=t.precision,
        device=t.device,
        warmup_images=t.warmup_images,
        lr_decay=t.lr_decay,
        min_lr_ratio=t.min_lr_ratio,
        on_nonfinite=t.on_nonfinite,
        log_every=t.log_every,
        sample_every=t.sample_every,
        eval_every=t.eval_every,
        ckpt_every=t.ckpt_every,
        keep_checkpoints=t.keep_checkpoints,
        ema_decay=t.ema.decay,
        ema_warmup=t.ema.warmup,
        ema_every=t.ema.every,
        sample_n=t.sample.n,
        sample_seed=t.sample.seed,
        sample_nrow=t.sample.nrow,
        eval_n=t.eval.n,
        eval_batch_size=t.eval.batch_size,
        progress=t.progress,
        measure_flops=t.measure_flops,
        num_workers=t.num_workers,
        dist_timeout_s=float(t.dist_timeout_s),
        compile=t.compile,
        compile_backend=t.compile_backend,
        world_size=world_size,
    )
    require(
        s.batch_size % (world_size * s.accumulate) == 0,
        f"trainer.batch_size={s.batch_size} must be divisible by world_size*trainer.accumulate="
        f"{world_size}*{s.accumulate}={world_size * s.accumulate}",
    )
    return s


def crossed(before: int, after: int, every: int) -> bool:
    """True when the step from ``before`` to ``after`` images crosses a multiple of ``every``."""
    return every > 0 and after // every > before // every
