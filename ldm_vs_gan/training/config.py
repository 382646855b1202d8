"""The training loop's config schemas: :class:`TrainerConfig` (``configs/trainer/``) and
:class:`LoggerConfig` (``configs/logger/``), the single source of the ``trainer`` and ``logger``
nodes' defaults (field defaults = ``configs/trainer/default.yaml`` and ``configs/logger/wandb.yaml``;
the YAML files document each key). ``schema.read(TrainerConfig, cfg.trainer, "trainer")`` gives the
typed object of a node (a DictConfig, a plain dict, a partial node: a missing key gets the default)
or a one-line :class:`ConfigError` naming ``trainer.<key>`` (unknown key, wrong type, or a value
``check`` refuses).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ldm_vs_gan import schema
from ldm_vs_gan.errors import ConfigError, bad_value
from ldm_vs_gan.training.optim import LR_DECAYS
from ldm_vs_gan.training.precision import PRECISIONS

ON_NONFINITE = ("stop", "skip")
DEVICES = ("auto", "cpu", "cuda")
LOGGERS = ("wandb", "none")
COMPILE_BACKENDS = ("inductor", "aot_eager", "eager")
WANDB_MODES = ("offline", "online", "disabled")


def _at_least(prefix: str, key: str, value: int, minimum: int) -> None:
    if value < minimum:
        raise ConfigError(f"{prefix}.{key}={value!r} is not allowed; choose an integer >= {minimum}")


@dataclass
class EmaConfig:
    """``trainer.ema``: EMA of the family's ema_network (weights/ and samples use it)."""

    # Decay per step (the LDM reference uses 0.9999).
    decay: float = 0.9999
    # Warm-up: use min(decay, (1+n)/(10+n)) after n steps.
    warmup: bool = True
    # Update every k steps with decay**k (same time constant, a k-th of the cost).
    every: int = 1

    def check(self, prefix: str) -> None:
        if not 0.0 <= self.decay < 1.0:
            raise ConfigError(f"{prefix}.decay={self.decay!r} is not allowed; choose a value in [0, 1)")
        if self.every < 1:
            raise ConfigError(f"{prefix}.every={self.every} must be an integer >= 1")


@dataclass
class SampleConfig:
    """``trainer.sample``: the fixed prompt panel of the sample grids."""

    # Number of panel images (the first n held-out captions).
    n: int = 16
    # First seed of the panel (seeds seed..seed+n-1).
    seed: int = 0
    # Images per grid row.
    nrow: int = 4

    def check(self, prefix: str) -> None:
        if self.n < 0:
            raise ConfigError(f"{prefix}.n={self.n} must be >= 0")


@dataclass
class EvalConfig:
    """``trainer.eval``: the quick evaluation on the first n held-out samples."""

    # Number of held-out samples.
    n: int = 256
    # Batch size of the quick evaluation.
    batch_size: int = 64

    def check(self, prefix: str) -> None:
        if self.n < 0:
            raise ConfigError(f"{prefix}.n={self.n} must be >= 0")
        if self.batch_size < 1:
            raise ConfigError(f"{prefix}.batch_size={self.batch_size} must be >= 1")


@dataclass
class TrainerConfig:
    """``configs/trainer/default.yaml`` (budgets and intervals count GLOBAL images seen)."""

    # Training budget: stop when this many images have been seen.
    max_images: int = 1_000_000
    # GLOBAL batch per optimizer step; each rank gets batch_size / world_size.
    batch_size: int = 64
    # Gradient accumulation: micro-batches per rank per step.
    accumulate: int = 1
    # auto (bf16 on CUDA, fp32 on CPU) | fp32 | bf16 | fp16.
    precision: str = "auto"
    # auto (cuda:LOCAL_RANK when CUDA is visible, else cpu) | cpu | cuda.
    device: str = "auto"
    # Linear learning-rate warm-up over this many images (0 = none).
    warmup_images: int = 0
    # After warm-up: none (constant lr) | cosine (half-cosine to min_lr_ratio * peak at max_images).
    lr_decay: str = "none"
    # Final lr of the cosine decay as a share of the peak.
    min_lr_ratio: float = 0.0
    # A NaN/inf loss or gradient: stop | skip (count it).
    on_nonfinite: str = "stop"
    # Log every this many images (0 = only at the end).
    log_every: int = 2048
    # Sample grid every this many images (0 = never).
    sample_every: int = 50_000
    # Quick evaluation every this many images (0 = never).
    eval_every: int = 100_000
    # Checkpoint every this many images (0 = only at the end and on SIGTERM/SIGINT).
    ckpt_every: int = 50_000
    # Periodic checkpoint copies kept besides last.pt (0 = keep only last.pt).
    keep_checkpoints: int = 3
    # EMA of the family's ema_network.
    ema: EmaConfig = field(default_factory=EmaConfig)
    # The fixed prompt panel of the sample grids.
    sample: SampleConfig = field(default_factory=SampleConfig)
    # Quick evaluation on the first n held-out samples.
    eval: EvalConfig = field(default_factory=EvalConfig)
    # tqdm progress bar on rank 0.
    progress: bool = True
    # Measure model FLOPs per image on the first step unless the family gives them.
    measure_flops: bool = True
    # DataLoader workers per rank; None = data.num_workers.
    num_workers: int | None = None
    # Timeout of collective operations (seconds) under torchrun.
    dist_timeout_s: float = 1800.0
    # torch.compile the networks the phases call: faster steps on GPUs, after a compile at the start.
    compile: bool = False
    # torch.compile backend: inductor (needs a C compiler) | aot_eager | eager (debugging).
    compile_backend: str = "inductor"

    def check(self, prefix: str) -> None:
        schema.choice(prefix, "precision", self.precision, PRECISIONS)
        schema.choice(prefix, "compile_backend", self.compile_backend, COMPILE_BACKENDS)
        schema.choice(prefix, "lr_decay", self.lr_decay, LR_DECAYS)
        schema.choice(prefix, "on_nonfinite", self.on_nonfinite, ON_NONFINITE)
        schema.choice(prefix, "device", self.device, DEVICES)
        for key, minimum in (("max_images", 1), ("batch_size", 1), ("accumulate", 1)):
            _at_least(prefix, key, getattr(self, key), minimum)
        for key in (
            "warmup_images",
            "log_every",
            "sample_every",
            "eval_every",
            "ckpt_every",
            "keep_checkpoints",
        ):
            _at_least(prefix, key, getattr(self, key), 0)
        if self.num_workers is not None:
            _at_least(prefix, "num_workers", self.num_workers, 0)
        if not 0.0 <= self.min_lr_ratio <= 1.0:
            raise bad_value(f"{prefix}.min_lr_ratio", self.min_lr_ratio, "a share in [0, 1]")
        if not self.dist_timeout_s > 0:
            raise bad_value(f"{prefix}.dist_timeout_s", self.dist_timeout_s, "a number of seconds > 0")


@dataclass
class LoggerConfig:
    """``configs/logger/*.yaml``: ``none`` (metrics.jsonl only) or ``wandb`` (its keys below)."""

    # none (metrics.jsonl and the progress bar only) | wandb.
    name: str = "none"
    # wandb: offline (no network, `wandb sync` later) | online (needs `wandb login`) | disabled.
    mode: str = "offline"
    # wandb project.
    project: str = "ldm_vs_gan"
    # wandb entity (team or user); None = the default of the logged-in user.
    entity: str | None = None
    # wandb group (e.g. a study name); None = none.
    group: str | None = None
    # wandb tags.
    tags: list[str] = field(default_factory=list)
    # Display name; None = the run dir's folder name.
    run_name: str | None = None
    # Upload the sample grids as images.
    log_images: bool = True

    def check(self, prefix: str) -> None:
        schema.choice(prefix, "name", self.name, LOGGERS)
        if self.name == "wandb":
            schema.choice(prefix, "mode", self.mode, WANDB_MODES)
