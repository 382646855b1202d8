"""The toy judge: trained briefly on a small world, it scores real images far above noise, its
features have the right shape, and it is cached (same weights hash on reload). Loading never
trains: only ensure_judge (the toy preparer's step) does."""

import pytest
import torch

from ldm_vs_gan.data import heldout_batch
from ldm_vs_gan.errors import UserError
from ldm_vs_gan.toy import world as toy
from ldm_vs_gan.toy.judge import encode_labels, ensure_judge, load_judge


@pytest.fixture(scope="module")
def cfg(tmp_path_factory):
    c = {
        "name": "toy",
        "resolution": 32,
        "n_train": 2000,
        "n_heldout": 200,
        "shard_size": 1000,
        "two_object_share": 0.3,
        "cache_dir": str(tmp_path_factory.mktemp("judge")),
        "judge": {"epochs": 3, "batch_size": 32, "lr": 0.003, "width": 8, "seed": 0},
    }
    toy.ensure_world(c, verbose=False)
    torch.set_num_threads(1)
    ensure_judge(c, verbose=False)
    return c


def test_real_images_score_far_above_noise(cfg):
    judge = load_judge(cfg)
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


def test_loading_never_trains_and_training_ignores_no_grad(tmp_path):
    tiny = {
        "name": "toy",
        "n_train": 128,
        "n_heldout": 16,
        "cache_dir": str(tmp_path),
        "judge": {"epochs": 1, "batch_size": 32, "width": 4},
    }
    toy.ensure_world(tiny, verbose=False)
    with pytest.raises(UserError, match="toy judge for this world is not trained yet"):
        load_judge(tiny)
    with torch.no_grad():  # a caller's no_grad must not reach the judge's training
        ensure_judge(tiny, verbose=False)
    judge = load_judge(tiny)
    assert judge.features(torch.zeros(2, 3, 32, 32, dtype=torch.uint8)).shape == (2, 32)


def test_cached_and_identified(cfg):
    a = load_judge(cfg)
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
