"""Part 2: LDM training throughput, our UNet (ldm/unet.py) against diffusers'
``UNet2DConditionModel`` with the identical architecture (ldm/twin.py, the same mapping
benchmarks/bench_unet.py times on the CPU).

One step = forward + MSE loss + backward under bf16 autocast (no optimizer: the networks are
compared, not Adam), the same batch, inputs and targets for both; two warm-up steps each, then
rounds timed in alternation. Sizes: ``thesis128`` (the 2023 thesis at 128 px: 16x16x4 latents,
77x512 tokens, batch 64) and ``sd`` (Stable Diffusion v1: 860M parameters, 64x64x4 latents,
77x768 tokens, batch 8); the dry run times ``tiny``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from gpu_parts.timing import alternate, bf16, median, peak_gib, reset_peak, seconds

# size: (latent side, tokens, batch)
CASES = {"thesis128": (16, 77, 64), "sd": (64, 77, 8)}
DRY = {"tiny": (8, 8, 2)}


def _inputs(cfg, side: int, tokens: int, batch: int, device):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(batch, cfg.in_channels, side, side, generator=g)
    t = torch.randint(0, 1000, (batch,), generator=g)
    ctx = torch.randn(batch, tokens, cfg.context_dim, generator=g)
    return [v.to(device) for v in (x, t, ctx, torch.randn(x.shape, generator=g))]


def measure(size: str, side: int, tokens: int, batch: int, device, rounds: int, steps: int) -> dict:
    from ldm_vs_gan.ldm.twin import diffusers_twin
    from ldm_vs_gan.ldm.unet import UNet, unet_config

    torch.manual_seed(0)
    cfg = unet_config(size)
    with device:  # built on the device: initialising 860M parameters on a CPU takes a minute
        nets = {"ours": UNet(cfg), "diffusers": diffusers_twin(cfg, sample_size=side)}
    x, t, ctx, target = _inputs(cfg, side, tokens, batch, device)

    def step(name):
        def run():
            with bf16(device):
                out = nets[name](x, t, ctx) if name == "ours" else nets[name](x, t, encoder_hidden_states=ctx)
                out = out if name == "ours" else out.sample
            F.mse_loss(out.float(), target).backward()

        return run

    fns = {k: step(k) for k in nets}
    rec = {
        "batch": batch,
        "latents": f"{cfg.in_channels}x{side}x{side}",
        "tokens": f"{tokens}x{cfg.context_dim}",
    }
    for k, fn in fns.items():
        rec[f"params_{k}_M"] = round(sum(p.numel() for p in nets[k].parameters()) / 1e6, 2)
        reset_peak(device)
        rec[f"warmup_s_{k}"] = round(seconds(fn, device, 2) * 2, 2)
        rec[f"peak_mem_gib_{k}"] = peak_gib(device)
    times = alternate(fns, device, rounds, steps)
    ips = {k: batch / median(v) for k, v in times.items()}
    paired = sorted(b / a for a, b in zip(times["ours"], times["diffusers"]))
    rec.update(
        {
            "img_per_s_ours": round(ips["ours"], 2),
            "img_per_s_diffusers": round(ips["diffusers"], 2),
            "ratio_ours_over_diffusers": round(ips["ours"] / ips["diffusers"], 3),
            "ratio_paired_median": round(median(paired), 3),
            "rounds": rounds,
            "steps_per_round": steps,
        }
    )
    return rec


def run(ctx, rec) -> None:
    device = torch.device(ctx.device)
    rounds, steps = (1, 1) if ctx.dry_run else (5, 3)
    rec["precision"] = "bf16 autocast"
    for size, (side, tokens, batch) in (DRY if ctx.dry_run else CASES).items():
        rec[size] = measure(size, side, tokens, batch, device, rounds, steps)
        if device.type == "cuda":
            torch.cuda.empty_cache()
