"""Part 3: GALIP at the official configuration (open_clip ViT-B/32 with random weights, 224 px,
batch 64): training images/s of one discriminator + generator step as the loop runs it (Adam,
shared fake batch, bf16 autocast) and sampling images/s; then the LDM's sampling latency at 25
DPM-Solver++ steps with classifier-free guidance (scale 7.5, one batched forward per step) at
the same 224 px for the thesis UNet (28x28x4 latents) and at 256 px for the SD-v1 UNet (its
four levels need a latent side divisible by 8), text encoding and VAE decoding included, batch
1 (latency) and 64 (throughput). Both cross-attend to the ViT-B/32 text tokens (512 wide, so the
SD UNet's context is 512, not SD's 768). The dry run uses the toy GALIP and tiny LDM sizes.
"""

from __future__ import annotations

import torch

from gpu_parts import models
from gpu_parts.timing import bf16, peak_gib, reset_peak, seconds

CAPTIONS = ["a small red circle", "a large blue square to the left of a green cross"]


def _galip_step(fam, images, captions):
    from ldm_vs_gan.data.batch import Batch
    from ldm_vs_gan.training.family import StepContext

    nets = fam.networks()
    opts = {
        ph.name: torch.optim.Adam(
            [p for n in ph.networks for p in nets[n].parameters()],
            lr=ph.optimizer.lr,
            betas=ph.optimizer.betas,
        )
        for ph in fam.phases()
    }
    batch = Batch(images, captions)

    def step():
        scratch: dict = {}  # one per step, shared by its phases, as the loop does in one process
        for ph in fam.phases():
            on = set(ph.networks) | set(ph.records_graph_for)
            for n, m in nets.items():
                m.requires_grad_(n in on)
            opts[ph.name].zero_grad(set_to_none=True)
            with bf16(images.device):
                loss, _ = fam.loss(ph.name, batch, StepContext(nets=nets, scratch=scratch))
            loss.float().backward()
            opts[ph.name].step()

    return step


def galip_speed(device, dry_run: bool) -> dict:
    torch.manual_seed(0)
    fam, res = models.galip(dry_run)
    fam.to(device).train()
    batch, steps = (2, 1) if dry_run else (64, 5)
    caps = (CAPTIONS * batch)[:batch]
    images = torch.rand(batch, 3, res, res, device=device) * 2 - 1
    step = _galip_step(fam, images, caps)
    reset_peak(device)
    rec = {"resolution": res, "batch": batch, "warmup_s": round(seconds(step, device, 2) * 2, 2)}
    rec["train_img_per_s"] = round(batch / seconds(step, device, steps), 2)
    rec["train_peak_mem_gib"] = peak_gib(device)
    fam.eval()
    seeds = list(range(batch))

    def sample():
        with bf16(device):
            fam.generate(caps, seeds)

    sample()
    rec["sample_img_per_s"] = round(batch / seconds(sample, device, steps), 2)
    rec["G_params_M"] = round(sum(p.numel() for p in fam.generator.parameters()) / 1e6, 2)
    rec["D_params_M"] = round(sum(p.numel() for p in fam.discriminator.parameters()) / 1e6, 2)
    return rec


def ldm_sampling(size: str, res: int, device, dry_run: bool, batches: tuple[int, ...]) -> dict:
    torch.manual_seed(0)
    fam = models.ldm(size, res, dry_run).to(device).eval()
    opts = {"sampler": "dpmpp_2m", "steps": 25, "guidance": 7.5}
    rec = {"resolution": res, "latents": "x".join(map(str, fam.latent_shape)), **opts}
    for b in batches:
        caps, seeds = (CAPTIONS * b)[:b], list(range(b))

        def sample(caps=caps, seeds=seeds):
            with bf16(device):
                fam.generate(caps, seeds, **opts)

        sample()  # warm-up (kernels, allocator)
        s = seconds(sample, device, 1 if dry_run or b > 1 else 3)
        rec[f"latency_s_batch{b}"] = round(s, 3)
        rec[f"img_per_s_batch{b}"] = round(b / s, 2)
    return rec


def run(ctx, rec) -> None:
    device = torch.device(ctx.device)
    rec["precision"] = "bf16 autocast (training and sampling)"
    rec["galip"] = galip_speed(device, ctx.dry_run)
    if device.type == "cuda":
        torch.cuda.empty_cache()
    cases = [("tiny", 16)] if ctx.dry_run else [("thesis128", 224), ("sd", 256)]
    for size, res in cases:
        batches = (1, 2) if ctx.dry_run else (1, 64)
        rec[f"ldm_sampling_{size}"] = ldm_sampling(size, res, device, ctx.dry_run, batches)
