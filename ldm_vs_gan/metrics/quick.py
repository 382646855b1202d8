"""The in-training evaluation (docs/CONTRACTS.md "Metrics": ``quick_eval``).

The loop calls ``quick_eval(family, batches, data_cfg)`` for generative families every
``trainer.eval_every`` images with a few held-out batches. On the toy world it returns the toy
judge's prompt fidelity and FID in the judge's feature space (FID-toy) at that small N, so the
report can draw curves against images seen and training time without extra runs. Small-N FID is
biased upward: compare these curves only with each other (same N), never with
``eval.py`` numbers at another N. Seeds are 0..N-1, fixed across calls, so a curve moves only
because the weights moved.
"""

from __future__ import annotations

import torch

from ldm_vs_gan.data.batch import Batch
from ldm_vs_gan.metrics.fid import fid_from_stats
from ldm_vs_gan.metrics.stats_cache import real_stats, stats_key

_EXTRACTORS: dict = {}


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """[-1, 1] floats -> uint8 with rounding (the inverse of the loader's mapping)."""
    return ((images.detach().float().cpu().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)


def _judge_extractor(data_cfg):
    from ldm_vs_gan.data.judge import load_judge
    from ldm_vs_gan.metrics.features import JudgeFeatures

    with torch.enable_grad():  # first use trains the judge: the caller's no_grad must not leak into it
        judge = load_judge(data_cfg)
    key = judge.sha256
    if key not in _EXTRACTORS:
        _EXTRACTORS[key] = (judge, JudgeFeatures(judge))
    return _EXTRACTORS[key]


@torch.no_grad()
def quick_eval(family, batches: list[Batch], data_cfg) -> dict[str, float]:
    """{"fidelity", "fid_toy", "quick_n"} on the toy world; {} for data without a judge."""
    batch = Batch.cat(list(batches))
    name = data_cfg.get("name") if hasattr(data_cfg, "get") else getattr(data_cfg, "name", None)
    if name != "toy" or not batch.attributes or batch.attributes[0] is None:
        return {}
    judge, extractor = _judge_extractor(data_cfg)
    n = len(batch)
    fake = torch.cat(
        [
            family.generate(b.captions, list(range(i, i + len(b)))).cpu()
            for i, b in zip(_offsets(batches), batches)
        ]
    )
    out = {
        f"fidelity/{k}" if k != "overall" else "fidelity": float(v)
        for k, v in judge.fidelity(fake, batch.attributes).items()
    }
    if n >= 2:
        key = stats_key(
            data="toy",
            split="heldout",
            n=n,
            resolution=int(batch.images.shape[-1]),
            extractor=extractor,
            selection=f"quick:first{n}",
        )
        real = real_stats(key, lambda: extractor(to_uint8(batch.images)))
        out["fid_toy"] = fid_from_stats(real.sum, real.cov_sum, real.n, extractor(fake))
    out["quick_n"] = float(n)
    return out


def _offsets(batches: list[Batch]) -> list[int]:
    offs, i = [], 0
    for b in batches:
        offs.append(i)
        i += len(b)
    return offs
