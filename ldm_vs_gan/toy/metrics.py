"""The toy world's metrics: the judge's feature space (``--feature toy``, FID-toy) and the quick
evaluation during training (prompt fidelity and FID-toy at small N; see metrics/quick.py)."""

from __future__ import annotations

import torch

from ldm_vs_gan.data.batch import Batch
from ldm_vs_gan.metrics.features import FeatureExtractor
from ldm_vs_gan.toy.judge import load_judge

_EXTRACTORS: dict = {}


class JudgeFeatures(FeatureExtractor):
    """The toy judge's features: the FID feature space of the toy world (docs/ARCHITECTURE.md)."""

    def __init__(self, judge):
        super().__init__()
        self.judge = judge
        self.name = f"toy-judge:{judge.name}"
        self.sha256 = judge.sha256
        self.resize = "none (judge runs at the toy world's native resolution)"
        self.extra = {"judge_heldout_accuracy": dict(getattr(judge, "heldout_accuracy", {}) or {})}
        # the contract does not state D; the judge has it as feature_dim, else known after the first call
        self.num_features = getattr(judge, "feature_dim", None)

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        f = self.judge.features(images)
        f = torch.as_tensor(f).float()
        if self.num_features is None:
            self.num_features = int(f.shape[1])
        return f


class JudgeSpace:
    """The ``features`` plug-in ``toy``."""

    @staticmethod
    def build(data_cfg) -> JudgeFeatures:
        return judge_features(data_cfg)[1]


def judge_features(data_cfg):
    """(judge, its feature extractor), one pair per judge in a process."""
    judge = load_judge(data_cfg)
    if judge.sha256 not in _EXTRACTORS:
        _EXTRACTORS[judge.sha256] = (judge, JudgeFeatures(judge))
    return _EXTRACTORS[judge.sha256]


class ToyQuick:
    """The ``quick`` plug-in of ``data.name: toy``: {"fidelity", "fidelity/...", "fid_toy", "quick_n"}."""

    @staticmethod
    @torch.no_grad()
    def evaluate(family, batches: list[Batch], data_cfg) -> dict[str, float]:
        from ldm_vs_gan.metrics.fid import fid_from_stats
        from ldm_vs_gan.metrics.quick import generate_for, to_uint8
        from ldm_vs_gan.metrics.stats_cache import real_stats, stats_key

        batch = Batch.cat(batches)
        if not batch.attributes or batch.attributes[0] is None:
            return {}
        judge, extractor = judge_features(data_cfg)
        n = len(batch)
        fake = generate_for(family, batches)
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
