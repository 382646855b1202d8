"""Cached real statistics: reused on a second call, recomputed when N or the extractor changes;
provenance fields present; diversity turns collapse into a number."""

import numpy as np
import torch

from ldm_vs_gan.metrics import provenance
from ldm_vs_gan.metrics.diversity import group_diversity, mean_pairwise_cosine_distance, pick_prompt_groups
from ldm_vs_gan.metrics.stats_cache import real_stats, stats_key


class FakeExtractor:
    def __init__(self, name, sha):
        self.name, self.sha256, self.resize = name, sha, "none"


def test_real_stats_reused_and_invalidated(tmp_path):
    calls = []

    def compute(n, d=4):
        def f():
            calls.append(n)
            return torch.arange(n * d, dtype=torch.float64).reshape(n, d).sin()

        return f

    ext_a, ext_b = FakeExtractor("toy-judge:a", "1" * 64), FakeExtractor("toy-judge:a", "2" * 64)
    key = stats_key(data="toy", split="heldout", n=10, resolution=32, extractor=ext_a)
    first = real_stats(key, compute(10), root=tmp_path)
    again = real_stats(key, compute(10), root=tmp_path)
    assert calls == [10] and not first.hit and again.hit  # second evaluation computes no real features
    np.testing.assert_allclose(again.cov_sum, first.cov_sum)
    assert again.n == 10 and again.features.shape == (10, 4)
    real_stats(
        stats_key(data="toy", split="heldout", n=12, resolution=32, extractor=ext_a),
        compute(12),
        root=tmp_path,
    )
    assert calls == [10, 12]  # N changed -> recomputed
    real_stats(
        stats_key(data="toy", split="heldout", n=10, resolution=32, extractor=ext_b),
        compute(10),
        root=tmp_path,
    )
    assert calls == [10, 12, 10]  # extractor weights changed -> recomputed
    real_stats(key, compute(10), root=tmp_path)
    assert calls == [10, 12, 10]  # and the first entry is still there


def test_provenance_fields_present():
    prov = provenance.build(
        num_samples=8,
        extractor={"name": "x", "weights_sha256": "0" * 64, "resize": "none"},
        data={"source": "toy", "split": "heldout"},
        checkpoint={"run_dir": "r", "images_seen": 100},
        sampling={"steps": 10},
        seed=0,
    )
    assert provenance.missing(prov) == []
    assert prov["implementation"]["torchmetrics"] not in ("absent", None)
    del prov["sampling"]
    assert provenance.missing(prov) == ["sampling"]


def test_diversity_detects_collapse():
    rng = np.random.default_rng(0)
    varied = [rng.normal(size=(6, 16)) for _ in range(4)]
    base = rng.normal(size=(1, 16))
    collapsed = [base + 1e-3 * rng.normal(size=(6, 16)) for _ in range(4)]
    assert group_diversity(varied) > 0.5 > 1e-3 > group_diversity(collapsed)
    assert np.isnan(mean_pairwise_cosine_distance(np.ones((1, 3))))


def test_prompt_groups_ignore_positions_and_paraphrase():
    a = {
        "objects": [{"shape": "circle", "color": "red", "size": "small", "x": 0.1, "y": 0.2}],
        "relation": None,
    }
    b = {
        "objects": [{"shape": "circle", "color": "red", "size": "small", "x": 0.7, "y": 0.5}],
        "relation": None,
    }
    c = {
        "objects": [{"shape": "square", "color": "red", "size": "small", "x": 0.7, "y": 0.5}],
        "relation": None,
    }
    caps = ["a small red circle", "a little red circle", "a small red square", "a red circle, small"]
    groups = pick_prompt_groups(caps, [a, b, c, a], k=5, m=2)
    assert groups == [[0, 1]]
