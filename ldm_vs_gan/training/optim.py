"""Optimizers from a phase's :class:`OptimizerSpec`, learning-rate warm-up, gradient clipping.

Warm-up is linear in images seen (not steps), so changing the batch size or the number of ranks
does not change the schedule measured on the fair axis between families (budgets count images
seen, never epochs or steps).
"""

from __future__ import annotations

import math

import torch

from ldm_vs_gan.errors import bad_value
from ldm_vs_gan.training.family import OptimizerSpec

OPTIMIZERS = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW}


def build_optimizer(
    spec: OptimizerSpec, params: list[torch.nn.Parameter], phase: str
) -> torch.optim.Optimizer:
    cls = OPTIMIZERS.get(spec.name)
    if cls is None:
        raise bad_value(f"optimizer of phase {phase!r} (name)", spec.name, OPTIMIZERS)
    if not params:
        raise ValueError(f"phase {phase!r} has no trainable parameters")
    return cls(params, lr=spec.lr, betas=tuple(spec.betas), eps=spec.eps, weight_decay=spec.weight_decay)


def warmup_factor(images_seen: int, warmup_images: int) -> float:
    """Linear warm-up: the factor for the step that ends at ``images_seen`` images."""
    if warmup_images <= 0:
        return 1.0
    return min(1.0, images_seen / warmup_images)


LR_DECAYS = ("none", "cosine")


def lr_factor(images_seen: int, warmup_images: int, decay: str, max_images: int, min_ratio: float) -> float:
    """Multiplier of each phase's peak lr for the step that ends at ``images_seen``: linear
    warm-up, then constant (``none``) or half-cosine down to ``min_ratio`` at ``max_images``
    (``cosine``; Loshchilov & Hutter 2017, SGDR eq. 5 without restarts). Both axes are images seen."""
    f = warmup_factor(images_seen, warmup_images)
    if decay == "cosine" and max_images > warmup_images:
        progress = min(1.0, max(0.0, (images_seen - warmup_images) / (max_images - warmup_images)))
        f *= min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))
    return f


def set_lr(opt: torch.optim.Optimizer, lr: float) -> None:
    for g in opt.param_groups:
        g["lr"] = lr


def grad_norm(params: list[torch.nn.Parameter], clip: float | None) -> torch.Tensor:
    """Global L2 norm of the gradients (before clipping); clips to ``clip`` when given."""
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return torch.zeros(())
    if clip is not None and clip > 0 and math.isfinite(clip):
        return torch.nn.utils.clip_grad_norm_(params, clip)
    return torch.nn.utils.get_total_norm(grads)
