"""``cfg.trainer`` read once into a typed object, with every check that must fail before any work.

Each problem is one line naming the key, the value and what is allowed (``errors.bad_value``).
"""

from __future__ import annotations

from dataclasses import dataclass

from omegaconf import DictConfig

from ldm_vs_gan.errors import ConfigError, bad_value, require
from ldm_vs_gan.training.optim import LR_DECAYS
from ldm_vs_gan.training.precision import PRECISIONS

ON_NONFINITE = ("stop", "skip")


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
    world_size: int

    @property
    def per_rank_batch(self) -> int:
        return self.batch_size // self.world_size

    @property
    def micro_batch(self) -> int:
        return self.per_rank_batch // self.accumulate


def _int(t: DictConfig, key: str, minimum: int = 0) -> int:
    v = t.get(key)
    if v is None:
        return 0
    if isinstance(v, bool) or not isinstance(v, int) or v < minimum:
        raise ConfigError(f"trainer.{key}={v!r} is not allowed; choose an integer >= {minimum}")
    return v


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
    if "trainer" not in cfg or cfg.trainer is None:
        raise ConfigError("trainer is missing; choose a trainer config, e.g. trainer=default")
    seed = cfg.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise bad_value("seed", seed, "an integer >= 0")
    check_optimizer_keys(cfg.get("model"))
    t = cfg.trainer
    precision = t.get("precision", "auto")
    if precision not in PRECISIONS:
        raise bad_value("trainer.precision", precision, PRECISIONS)
    lr_decay = t.get("lr_decay", "none")
    if lr_decay not in LR_DECAYS:
        raise bad_value("trainer.lr_decay", lr_decay, LR_DECAYS)
    on_nf = t.get("on_nonfinite", "stop")
    if on_nf not in ON_NONFINITE:
        raise bad_value("trainer.on_nonfinite", on_nf, ON_NONFINITE)
    ema = t.get("ema") or {}
    sample = t.get("sample") or {}
    ev = t.get("eval") or {}
    s = Settings(
        max_images=_int(t, "max_images", 1),
        batch_size=_int(t, "batch_size", 1),
        accumulate=_int(t, "accumulate", 1),
        precision=precision,
        device=t.get("device", "auto"),
        warmup_images=_int(t, "warmup_images"),
        lr_decay=lr_decay,
        min_lr_ratio=float(t.get("min_lr_ratio", 0.0)),
        on_nonfinite=on_nf,
        log_every=_int(t, "log_every"),
        sample_every=_int(t, "sample_every"),
        eval_every=_int(t, "eval_every"),
        ckpt_every=_int(t, "ckpt_every"),
        keep_checkpoints=_int(t, "keep_checkpoints"),
        ema_decay=float(ema.get("decay", 0.9999)),
        ema_warmup=bool(ema.get("warmup", True)),
        ema_every=int(ema.get("every", 1)),
        sample_n=int(sample.get("n", 16)),
        sample_seed=int(sample.get("seed", 0)),
        sample_nrow=int(sample.get("nrow", 4)),
        eval_n=int(ev.get("n", 64)),
        eval_batch_size=int(ev.get("batch_size", 32)),
        progress=bool(t.get("progress", True)),
        measure_flops=bool(t.get("measure_flops", True)),
        num_workers=t.get("num_workers"),
        dist_timeout_s=float(t.get("dist_timeout_s", 1800)),
        world_size=world_size,
    )
    require(
        s.batch_size % (world_size * s.accumulate) == 0,
        f"trainer.batch_size={s.batch_size} must be divisible by world_size*trainer.accumulate="
        f"{world_size}*{s.accumulate}={world_size * s.accumulate}",
    )
    require(
        0.0 <= s.ema_decay < 1.0,
        f"trainer.ema.decay={s.ema_decay!r} is not allowed; choose a value in [0, 1)",
    )
    require(s.ema_every >= 1, f"trainer.ema.every={s.ema_every} must be an integer >= 1")
    require(s.eval_batch_size >= 1, f"trainer.eval.batch_size={s.eval_batch_size} must be >= 1")
    require(s.sample_n >= 0 and s.eval_n >= 0, "trainer.sample.n and trainer.eval.n must be >= 0")
    return s


def crossed(before: int, after: int, every: int) -> bool:
    """True when the step from ``before`` to ``after`` images crosses a multiple of ``every``."""
    return every > 0 and after // every > before // every
