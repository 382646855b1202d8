"""The indexed loader's contract: a pure function of (seed, images_seen), ranks take contiguous
slices, resuming replays nothing, workers do not change the stream."""

import itertools

import pytest
import torch

from ldm_vs_gan.data import build_loader
from ldm_vs_gan.toy.world import ensure_world


@pytest.fixture(scope="module")
def cfg(tmp_path_factory):
    c = {
        "name": "toy",
        "resolution": 32,
        "n_train": 96,
        "n_heldout": 20,
        "shard_size": 40,
        "two_object_share": 0.3,
        "cache_dir": str(tmp_path_factory.mktemp("toy")),
    }
    ensure_world(c, verbose=False)  # the toy world's preparer step: the loader only reads it
    return c


def take(cfg, n_batches, **kw):
    return list(itertools.islice(build_loader(cfg, split="train", **kw), n_batches))


def keys(batches):
    return [k for b in batches for k in b.keys]


def test_epochs_are_permutations_and_seeded(cfg):
    bs = take(cfg, 12, batch_size=16, seed=3)  # 192 samples = 2 epochs of 96
    k = keys(bs)
    assert sorted(k[:96]) == sorted(set(k[:96])) and len(set(k[:96])) == 96
    assert sorted(k[96:]) == sorted(k[:96]) and k[96:] != k[:96]  # new order each epoch
    assert keys(take(cfg, 12, batch_size=16, seed=3)) == k
    assert keys(take(cfg, 12, batch_size=16, seed=4)) != k


def test_ranks_take_contiguous_slices(cfg):
    one = take(cfg, 5, batch_size=8, seed=0)
    r0 = take(cfg, 5, batch_size=4, rank=0, world_size=2, seed=0)
    r1 = take(cfg, 5, batch_size=4, rank=1, world_size=2, seed=0)
    for b, a0, a1 in zip(one, r0, r1):
        assert b.keys == a0.keys + a1.keys
        assert torch.equal(b.images, torch.cat([a0.images, a1.images]))


def test_resume_equals_tail(cfg):
    full = take(cfg, 10, batch_size=8, seed=1)
    tail = take(cfg, 6, batch_size=8, seed=1, start_images_seen=32)
    assert keys(tail) == keys(full[4:])


def test_workers_do_not_change_the_stream(cfg):
    a = take(cfg, 6, batch_size=8, seed=2, num_workers=0)
    b = take(cfg, 6, batch_size=8, seed=2, num_workers=2)
    assert keys(a) == keys(b)
    assert all(torch.equal(x.images, y.images) for x, y in zip(a, b))


def test_heldout_is_one_ordered_pass_split_over_ranks(cfg):
    one = list(build_loader(cfg, split="heldout", batch_size=8))
    assert [len(b) for b in one] == [8, 8, 4]
    assert keys(one) == [f"heldout-{i:07d}" for i in range(20)]
    r = [list(build_loader(cfg, split="heldout", batch_size=4, rank=i, world_size=2)) for i in range(2)]
    assert sorted(keys(r[0]) + keys(r[1])) == keys(one)
