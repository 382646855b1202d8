"""The toy world's metrics: the judge's feature space (``--feature toy``, FID-toy) and the quick
evaluation during training (prompt fidelity and FID-toy at small N; see metrics/quick.py)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

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
            fake_f = extractor(fake)
            out["fid_toy"] = fid_from_stats(real.sum, real.cov_sum, real.n, fake_f)
            out.update(panel_prdc(real.features, fake_f))
        single = [i for i, a in enumerate(batch.attributes) if a and len(a.get("objects", [])) == 1]
        out.update(clip_judge_agreement(family, fake[single], judge))  # one-object prompts: one reading
        out.update(swapped_caption_rejection(family, batch, single))
        out["quick_n"] = float(n)
        return out


def panel_prdc(real_features, fake_features, k: int = 5) -> dict[str, float]:
    """Recall and coverage on the fixed quick-evaluation panel: mode collapse as it happens
    (Kynkaanniemi et al. 2019, Naeem et al. 2020); {} when the panel is too small for k."""
    from ldm_vs_gan.metrics.prdc import prdc

    if min(len(real_features), len(fake_features)) < k + 1:
        return {}
    m = prdc(real_features, torch.as_tensor(fake_features).double().numpy(), k=k)
    return {"recall": m["recall"], "coverage": m["coverage"], "precision": m["precision"]}


@torch.no_grad()
def clip_reading(clip, images_u8: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(colour index, shape index) per image, on the CPU: the frozen CLIP's zero-shot pick among
    the 16 one-object captions "a {colour} {shape}"."""
    from ldm_vs_gan.toy.world import COLORS, SHAPES

    pairs = [(c, s) for c in COLORS for s in SHAPES]
    device = next(clip.parameters()).device
    txt = F.normalize(clip.encode_text([f"a {c} {s}" for c, s in pairs]).pooled.float(), dim=-1)
    img = F.normalize(clip.encode_image(images_u8.to(device).float() / 127.5 - 1.0).float(), dim=-1)
    pick = (img @ txt.t()).argmax(1).cpu()
    return pick // len(SHAPES), pick % len(SHAPES)


@torch.no_grad()
def clip_judge_agreement(family, fake_u8: torch.Tensor, judge) -> dict[str, float]:
    """How often the family's frozen CLIP (zero-shot, :func:`clip_reading`) and the toy judge read
    the same shape and colour in the generated images. A generator that pleases the CLIP without
    drawing the object shows up as disagreement. {} for a family without a CLIP."""
    clip = getattr(family, "clip", None)
    if clip is None or not hasattr(clip, "encode_image") or len(fake_u8) == 0:
        return {}
    color, shape = clip_reading(clip, fake_u8)
    pred = judge.predict(fake_u8.cpu())
    same = (color == pred["color0"]) & (shape == pred["shape0"])
    return {"clip_judge_agreement": float(same.float().mean())}


@torch.no_grad()
def swapped_caption_rejection(family, batch: Batch, single: list[int]) -> dict[str, float]:
    """For families whose discriminator scores (image, caption) pairs (``caption_scores``: GALIP's
    Mate-D), the share of real one-object images it scores higher with their own caption than with
    one attribute swapped (shape, colour, size): 0.5 = the condition is ignored, 1 = always read."""
    from ldm_vs_gan.toy.world import COLORS, SHAPES, SIZES, make_caption

    if not hasattr(family, "caption_scores") or not single:
        return {}
    attrs = [batch.attributes[i] for i in single]
    images = batch.images[single]
    own = family.caption_scores(images, [make_caption(a, 0) for a in attrs])
    out = {}
    for field, vocab in (("shape", SHAPES), ("color", COLORS), ("size", SIZES)):
        swapped = []
        for a in attrs:
            o = dict(a["objects"][0])
            o[field] = vocab[(vocab.index(o[field]) + 1) % len(vocab)]
            swapped.append(make_caption({**a, "objects": [o]}, 0))
        other = family.caption_scores(images, swapped)
        out[f"d_rejects_swapped_{field}"] = float((own > other).float().mean())
    return out
