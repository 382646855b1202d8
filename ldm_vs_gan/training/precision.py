"""Mixed precision: which dtype to autocast to, and one GradScaler per phase for fp16.

Policy: fp32 on CPU (CPUs without native bf16 emulate it and run it 2-6x slower), bf16
autocast by default on CUDA, fp16 + GradScaler as an option. fp16 needs loss scaling because its
small exponent range underflows gradients (Micikevicius et al. 2018, "Mixed Precision Training");
each phase has its own scaler because GALIP-style phases have losses of very different scales.
"""

from __future__ import annotations

import contextlib

import torch

from ldm_vs_gan.errors import bad_value

PRECISIONS = ("auto", "fp32", "bf16", "fp16")


def resolve(precision: str, device: torch.device) -> str:
    if precision not in PRECISIONS:
        raise bad_value("trainer.precision", precision, PRECISIONS)
    if precision == "auto":
        return "bf16" if device.type == "cuda" else "fp32"
    return precision


def autocast(precision: str, device: torch.device):
    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)


def make_scaler(precision: str, device: torch.device) -> torch.amp.GradScaler | None:
    return torch.amp.GradScaler(device.type) if precision == "fp16" else None
