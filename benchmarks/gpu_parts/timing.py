"""Timing on a device: synchronised wall clock, bf16 autocast, peak memory."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import torch


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def seconds(fn: Callable[[], object], device: torch.device, n: int = 1) -> float:
    """Mean wall time of ``fn`` over ``n`` calls, the device's queue drained before and after."""
    sync(device)
    t0 = time.perf_counter()
    for _ in range(n):
        fn()
    sync(device)
    return (time.perf_counter() - t0) / n


def bf16(device: torch.device):
    """The project's GPU training precision (training/precision.py), also used on the CPU here so
    a dry run goes through the same code."""
    return torch.autocast(device.type, dtype=torch.bfloat16)


def reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def peak_gib(device: torch.device) -> float | None:
    return round(torch.cuda.max_memory_allocated(device) / 2**30, 2) if device.type == "cuda" else None


def alternate(fns: dict[str, Callable[[], object]], device, rounds: int, steps: int) -> dict[str, list]:
    """Seconds per call of each function, timed in alternation (ABAB...) so that a slow stretch
    of a shared machine hits all of them; one entry per round."""
    times: dict[str, list] = {k: [] for k in fns}
    for _ in range(rounds):
        for k, fn in fns.items():
            times[k].append(seconds(fn, device, steps))
    return times


def median(xs: list[float]) -> float:
    return statistics.median(xs)
