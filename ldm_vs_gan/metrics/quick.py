"""The in-training evaluation (docs/CONTRACTS.md "Metrics": ``quick_eval``).

The loop calls ``quick_eval(family, batches, data_cfg)`` for generative families every
``trainer.eval_every`` images with a few held-out batches. The metrics come from the data's
plug-in (``ldm_vs_gan.plugins`` kind ``quick``, keyed by ``data.name``): on the toy world, the
judge's prompt fidelity and FID in the judge's feature space (FID-toy) at that small N, so the
report can draw curves against images seen and training time without extra runs. Small-N FID is
biased upward: compare these curves only with each other (same N), never with ``eval.py``
numbers at another N. Seeds are 0..N-1, fixed across calls, so a curve moves only because the
weights moved.
"""

from __future__ import annotations

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
    part = plugins.find("quick", name)
    if part is None or not batches:
        return {}
    return part.evaluate(family, list(batches), data_cfg)
