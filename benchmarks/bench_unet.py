"""Training throughput of our UNet vs diffusers' UNet2DConditionModel with the same architecture.

What: images/s of one training step (forward + MSE loss + backward, no optimizer step) in fp32 on
the CPU, batch 16 of 16x16x4 latents with 77x512 text tokens (the thesis setting, size
``thesis128``); diffusers' model is built with the same channels, levels, attention placement,
heads, context dim and linear projections (parameter counts are printed: they must agree within
2%). Also: FLOPs per training step (``torch.utils.flop_counter``), the achieved FLOP/s and its
share of the measured fp32 matrix-multiply peak (2048x2048 GEMM). The target is ratio >= 1.0.

Measured choices: q/k/v (and cross-attention k/v) are fused into one matrix each; attention is
``F.scaled_dot_product_attention``; ``--channels-last`` was slower here (ratio 0.95 vs 1.10 with
contiguous tensors, same load), so the UNet stays in the default memory format.

The two models are timed in alternation (ABAB...), because the machine may be shared: the median
per model gives img/s, and each round's paired ratio (diffusers' time / ours, measured a second
apart, so slow stretches of the machine hit both) gives the ratio, reported as the median with its
quartiles. The same code gave 6-round ratios of medians from 0.92 to 1.10 on different days; in
three 16-round runs on one day the per-round ratios spread 0.85-1.21 around medians of 1.03-1.04.
Run: ``python benchmarks/bench_unet.py [--size thesis128] [--threads N] [--rounds R]``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

from ldm_vs_gan.ldm.twin import diffusers_twin  # noqa: E402
from ldm_vs_gan.ldm.unet import UNet, unet_config  # noqa: E402


def gemm_peak(n=2048, reps=10) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    for _ in range(2):
        a @ b
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t0)
    return 2 * n**3 / best


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", default="thesis128")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--latent", type=int, default=16)
    ap.add_argument("--tokens", type=int, default=77)
    ap.add_argument("--rounds", type=int, default=16, help="timed rounds per model (alternating)")
    ap.add_argument("--steps", type=int, default=3, help="training steps per round")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--channels-last", action="store_true", help="run ours in channels_last")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    cfg = unet_config(args.size)
    ours, theirs = UNet(cfg), diffusers_twin(cfg)
    if args.channels_last:
        ours = ours.to(memory_format=torch.channels_last)
    n_ours = sum(p.numel() for p in ours.parameters())
    n_theirs = sum(p.numel() for p in theirs.parameters())
    B, L = args.batch, args.tokens
    x = torch.randn(B, cfg.in_channels, args.latent, args.latent)
    t = torch.randint(0, 1000, (B,))
    ctx = torch.randn(B, L, cfg.context_dim)
    target = torch.randn_like(x)

    def step_ours():
        xx = x.contiguous(memory_format=torch.channels_last) if args.channels_last else x
        loss = torch.nn.functional.mse_loss(ours(xx, t, ctx), target)
        loss.backward()

    def step_theirs():
        loss = torch.nn.functional.mse_loss(theirs(x, t, encoder_hidden_states=ctx).sample, target)
        loss.backward()

    with FlopCounterMode(display=False) as fc:
        step_ours()
    flops_ours = fc.get_total_flops()
    with FlopCounterMode(display=False) as fc:
        step_theirs()
    flops_theirs = fc.get_total_flops()

    for f in (step_ours, step_theirs):  # warm-up
        f()
    times = {"ours": [], "diffusers": []}
    for _ in range(args.rounds):
        for name, f in (("ours", step_ours), ("diffusers", step_theirs)):
            t0 = time.perf_counter()
            for _ in range(args.steps):
                f()
            times[name].append((time.perf_counter() - t0) / args.steps)
    peak = gemm_peak()
    med = {k: statistics.median(v) for k, v in times.items()}
    ips = {k: B / v for k, v in med.items()}
    print(
        f"size={args.size} batch={B} latents={cfg.in_channels}x{args.latent}x{args.latent} tokens={L}x{cfg.context_dim} "
        f"threads={torch.get_num_threads()} channels_last={args.channels_last} load={os.getloadavg()[0]:.2f}"
    )
    print(
        f"params: ours {n_ours:,}  diffusers {n_theirs:,}  diff {100 * (n_ours - n_theirs) / n_theirs:+.2f}%"
    )
    print(f"train step FLOPs: ours {flops_ours / 1e9:.1f} G  diffusers {flops_theirs / 1e9:.1f} G")
    paired = sorted(b / a for a, b in zip(times["ours"], times["diffusers"]))  # per round: theirs / ours
    q1, q2, q3 = statistics.quantiles(paired, n=4, method="inclusive") if len(paired) > 1 else paired * 3
    print(f"img/s (median of {args.rounds} rounds): ours {ips['ours']:.2f}  diffusers {ips['diffusers']:.2f}")
    print(
        f"ratio ours/diffusers, paired per round: median {q2:.3f}  quartiles {q1:.3f}-{q3:.3f}  "
        f"range {paired[0]:.3f}-{paired[-1]:.3f}  (ratio of medians {ips['ours'] / ips['diffusers']:.3f})"
    )
    print(f"GEMM peak (2048x2048 fp32): {peak / 1e9:.0f} GFLOP/s")
    for k, fl in (("ours", flops_ours), ("diffusers", flops_theirs)):
        ach = fl / med[k]
        print(f"achieved {k}: {ach / 1e9:.0f} GFLOP/s = {100 * ach / peak:.0f}% of GEMM peak")


if __name__ == "__main__":
    main()
