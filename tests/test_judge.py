"""The toy judge: trained briefly on a small world, it scores real images far above noise, its
features have the right shape, and it is cached (same weights hash on reload)."""

import pytest
import torch

from ldm_vs_gan.data import heldout_batch, toy
from ldm_vs_gan.data.judge import encode_labels, load_judge


@pytest.fixture(scope="module")
def cfg(tmp_path_factory):
    return {
        "name": "toy",
        "resolution": 32,
        "n_train": 2000,
        "n_heldout": 200,
        "shard_size": 1000,
        "two_object_share": 0.3,
        "cache_dir": str(tmp_path_factory.mktemp("judge")),
        "judge": {"epochs": 3, "batch_size": 32, "lr": 0.003, "width": 8, "seed": 0},
    }


def test_real_images_score_far_above_noise(cfg):
    torch.set_num_threads(1)
    judge = load_judge(cfg, verbose=False)
    b = heldout_batch(cfg, 200)
    real = ((b.images + 1) * 127.5).round().to(torch.uint8)
    noise = torch.randint(0, 256, real.shape, dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    f_real, f_noise = judge.fidelity(real, b.attributes), judge.fidelity(noise, b.attributes)
    # a briefly trained judge (about 190 steps): far from its 99% but far above chance on noise
    # (chance: 1/16 for shape and colour together, 1/4 for colour)
    assert f_real["single/overall"] > 0.3 and f_noise["single/overall"] < 0.15
    assert f_real["single/color"] > 0.8 and f_noise["single/color"] < 0.5
    assert f_real["n_single"] + f_real["n_two"] == 200
    # captions work as prompts too (parsed into the same canonical records)
    assert judge.fidelity(real, b.captions) == f_real
    feats = judge.features(real)
    assert feats.shape == (200, judge.feature_dim) and torch.isfinite(feats).all()
    assert set(judge.heldout_accuracy) >= {"shape", "color", "size", "count", "relation"}
    assert judge.heldout_accuracy["color"] > 0.8


def test_first_use_under_no_grad_trains(tmp_path):
    tiny = {
        "name": "toy",
        "n_train": 128,
        "n_heldout": 16,
        "cache_dir": str(tmp_path),
        "judge": {"epochs": 1, "batch_size": 32, "width": 4},
    }
    with torch.no_grad():  # quick evaluation calls load_judge inside no_grad
        judge = load_judge(tiny, verbose=False)
    assert judge.features(torch.zeros(2, 3, 32, 32, dtype=torch.uint8)).shape == (2, 32)


def test_cached_and_identified(cfg):
    a = load_judge(cfg, verbose=False)
    assert len(a.sha256) == 64 and a.name.startswith("toy-judge-")
    assert (toy.world_dir(cfg).parent / f"judge-{a.name.removeprefix('toy-judge-')}" / "meta.json").exists()


def test_labels_follow_canonical_slots():
    lab = encode_labels(
        [
            toy.parse_caption("a large blue square to the right of a small red circle"),
            toy.parse_caption("one small green cross"),
        ]
    )
    assert lab["shape0"].tolist() == [toy.SHAPES.index("circle"), toy.SHAPES.index("cross")]
    assert lab["shape1"].tolist() == [toy.SHAPES.index("square"), -1]
    assert lab["relation"].tolist() == [toy.RELATIONS.index("left of"), -1]
