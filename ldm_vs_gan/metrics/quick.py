"""The in-training evaluation (docs/CONTRACTS.md "Metrics": ``quick_eval``).

The loop calls ``quick_eval(family, batches, data_cfg)`` for generative families every
``trainer.eval_every`` images with a few held-out batches. The metrics come from the data's
plug-in (``ldm_vs_gan.plugins`` kind ``quick``, keyed by ``data.name``): on the toy world, the
judge's prompt fidelity and FID in the judge's feature space (FID-toy) at that small N, so the
report can draw curves against images seen and training time without extra runs. Small-N FID is
biased upward: compare these curves only with each other (same N), never with ``eval.py``
numbers at another N. Seeds are 0..N-1, fixed across calls, so a curve moves only because the
weights moved. Data without a ``quick`` plug-in gets :func:`clip_space_metrics`.
"""

from __future__ import annotations

import hashlib

import torch

from ldm_vs_gan.data.batch import Batch


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """[-1, 1] floats -> uint8 with rounding (the inverse of the loader's mapping)."""
    return ((images.detach().float().cpu().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)


def generate_for(family, batches: list[Batch]) -> torch.Tensor:
    """The family's images for the batches' captions, seeds 0..N-1 in order (uint8-ready floats)."""
    out, i = [], 0
    for b in batches:
        out.append(family.generate(b.captions, list(range(i, i + len(b)))).cpu())
        i += len(b)
    return torch.cat(out)


@torch.no_grad()
def quick_eval(family, batches: list[Batch], data_cfg) -> dict[str, float]:
    """The quick metrics of ``data.name``'s plug-in; {} for data that has none."""
    from ldm_vs_gan import plugins

    name = data_cfg.get("name") if hasattr(data_cfg, "get") else getattr(data_cfg, "name", None)
    if not batches:
        return {}
    part = plugins.find("quick", name)
    if part is not None:
        return part.evaluate(family, list(batches), data_cfg)
    return clip_space_metrics(family, list(batches))


@torch.no_grad()
def clip_space_metrics(family, batches: list[Batch]) -> dict[str, float]:
    """Data without its own quick metrics: FID in the run's CLIP image space (``fid_clip``) and the
    CLIP score of the generated images with their captions, by the family's own frozen CLIP. Both
    flatter a GAN trained against that CLIP (compare families on ``eval`` numbers instead); {} for
    a family that holds no CLIP."""
    from ldm_vs_gan.metrics.clip_score import clip_score
    from ldm_vs_gan.metrics.features import ClipFeatures
    from ldm_vs_gan.metrics.fid import fid_from_stats
    from ldm_vs_gan.metrics.stats_cache import real_stats, stats_key

    clip = getattr(family, "clip", None)
    if clip is None or not hasattr(clip, "encode_image"):
        return {}
    batch = Batch.cat(batches)
    device = batch.images.device
    fake = generate_for(family, batches).to(device)
    out = {"clip_score": clip_score(clip, fake, batch.captions), "quick_n": float(len(batch))}
    if len(batch) >= 2:
        ext = ClipFeatures(clip, "run")
        real_u8 = to_uint8(batch.images).to(device)
        digest = hashlib.sha256(real_u8.cpu().numpy().tobytes()).hexdigest()[:16]
        key = stats_key(
            data="heldout",
            split="heldout",
            n=len(batch),
            resolution=int(batch.images.shape[-1]),
            extractor=ext,
            selection=f"quick:first{len(batch)}:sha256 {digest}",
        )
        real = real_stats(key, lambda: ext(real_u8).double().cpu())
        out["fid_clip"] = fid_from_stats(real.sum, real.cov_sum, real.n, ext(fake).double().cpu())
    return out
