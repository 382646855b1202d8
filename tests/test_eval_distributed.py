"""Distributed generation over 2 gloo ranks returns exactly N images, each once, in index order."""

import os
import socket

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from ldm_vs_gan import distributed
from ldm_vs_gan.metrics.generation import eval_seeds, generate_sharded


class StandIn:
    """Tiny stand-in family: image i encodes its caption index and seed in its pixels."""

    def generate(self, captions, seeds, **sampling):
        out = torch.zeros(len(captions), 3, 4, 4, dtype=torch.uint8)
        for j, (c, s) in enumerate(zip(captions, seeds)):
            i = int(c.split()[-1])
            out[j, 0] = i % 256
            out[j, 1] = i // 256
            out[j, 2] = int(s) % 251
        return out


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank, world, port, n, out_dir):
    # the variables torchrun exports, so the group is made by the same set-up as training's
    os.environ.update(
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        RANK=str(rank),
        LOCAL_RANK=str(rank),
        WORLD_SIZE=str(world),
    )
    torch.set_num_threads(1)
    info = distributed.setup("cpu")
    assert info.owns_group and (info.rank, info.world_size) == (rank, world)
    try:
        caps = [f"prompt {i}" for i in range(n)]
        imgs, lat = generate_sharded(StandIn(), caps, eval_seeds(0, n), batch_size=3, dist=info)
        torch.save(imgs, os.path.join(out_dir, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()  # spawned workers exit without running atexit handlers


def test_two_gloo_ranks_exactly_n_no_duplicates(tmp_path):
    n = 11  # odd on purpose: ranks get 6 and 5
    mp.spawn(_worker, args=(2, _free_port(), n, str(tmp_path)), nprocs=2, join=True)
    seeds = eval_seeds(0, n)
    single, _ = generate_sharded(StandIn(), [f"prompt {i}" for i in range(n)], seeds, batch_size=4)
    for r in range(2):
        imgs = torch.load(tmp_path / f"rank{r}.pt", weights_only=True)
        assert imgs.shape == (n, 3, 4, 4)
        idx = imgs[:, 0, 0, 0].long() + 256 * imgs[:, 1, 0, 0].long()
        assert idx.tolist() == list(range(n))  # each index once, in order
        assert torch.equal(imgs, single)  # identical to a single-process run


def test_eval_seeds_are_int64_distinct_and_reproducible():
    a, b = eval_seeds(0, 1000), eval_seeds(1, 1000)
    assert a == eval_seeds(0, 1000) and len(set(a)) == 1000 and a != b
    assert max(a) > 2**31  # seeds above 2^31 are common (REFERENCE.md s3): int64 throughout
