"""Evaluation (docs/CONTRACTS.md "Metrics"): feature extractors, FID/KID/IS through torchmetrics,
cached real statistics, CLIP score, diversity, provenance, and the loop's ``quick_eval``."""

from __future__ import annotations


def quick_eval(family, batches, data_cfg) -> dict[str, float]:
    """See :func:`ldm_vs_gan.metrics.quick.quick_eval` (imported lazily: the loop imports this
    package even for families that never evaluate)."""
    from ldm_vs_gan.metrics.quick import quick_eval as _quick_eval

    return _quick_eval(family, batches, data_cfg)


__all__ = ["quick_eval"]
