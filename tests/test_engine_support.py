"""Shared helpers of the engine tests (no tests here): a stand-in data source, configs, a runner.

The stand-in follows the data contract (docs/CONTRACTS.md "Data") exactly where the engine relies
on it: global step k holds global stream positions [k*G, (k+1)*G), rank r the r-th contiguous
slice, a pure function of (seed, position), so 2 ranks x B/2 see the samples of 1 rank x B and a
resume at ``start_images_seen`` needs no replay. It is tiny (8x8 images) and needs no cache.

Run as a script (``python tests/test_engine_support.py CFG.yaml [CFG2.yaml ...]``, or under torchrun) it patches
the stand-in into ``ldm_vs_gan.data`` and trains like ``ldm_vs_gan.train`` does (UserError ->
one line, exit 2): the subprocess tests (DDP, signals) use it.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from omegaconf import OmegaConf

REPO = Path(__file__).resolve().parent.parent
CONFIGS = REPO / "configs"
RES = 8
N_TRAIN = 97  # prime: positions wrap at odd places


def _sample(index: int, split: str):
    g = torch.Generator().manual_seed(index * 2 + (split == "heldout"))
    img = torch.rand(3, RES, RES, generator=g) * 2 - 1
    return img, f"{split} sample {index}"


def standin_build_loader(
    data_cfg, *, split, batch_size, rank=0, world_size=1, seed=0, start_images_seen=0, num_workers=None
):
    assert split == "train"

    def gen():
        pos = start_images_seen + rank * batch_size
        while True:
            idx = [(seed * 31 + (pos + i) * 7) % N_TRAIN for i in range(batch_size)]
            imgs, caps = zip(*(_sample(i, "train") for i in idx))
            from ldm_vs_gan.data.batch import Batch

            skipped = {"undecodable": 1} if pos % 48 == 0 else {}
            yield Batch(torch.stack(imgs), list(caps), [str(i) for i in idx], [None] * batch_size, skipped)
            pos += batch_size * world_size

    return gen()


def standin_heldout_batch(data_cfg, n, offset=0):
    from ldm_vs_gan.data.batch import Batch

    imgs, caps = zip(*(_sample(i, "heldout") for i in range(offset, offset + n)))
    return Batch(torch.stack(imgs), list(caps), [], [None] * n, {})


def patch_data() -> None:
    import ldm_vs_gan.data as data

    data.build_loader = standin_build_loader
    data.heldout_batch = standin_heldout_batch


def trainer_cfg(name: str = "smoke"):
    """A trainer group option with its defaults list applied (default.yaml + the option)."""
    base = OmegaConf.load(CONFIGS / "trainer" / "default.yaml")
    if name != "default":
        over = OmegaConf.load(CONFIGS / "trainer" / f"{name}.yaml")
        over.pop("defaults", None)
        base = OmegaConf.merge(base, over)
    return base


def make_cfg(run_dir, **overrides):
    """Config of the regress family on the stand-in data with trainer=smoke, logger=none;
    ``overrides`` are dotted keys (``trainer.max_images=64``)."""
    cfg = OmegaConf.create(
        {
            "seed": 0,
            "run_dir": str(run_dir),
            "init_from": None,
            "model": OmegaConf.load(CONFIGS / "model" / "regress.yaml"),
            "data": {"name": "standin", "resolution": RES},
            "trainer": trainer_cfg("smoke"),
            "logger": {"name": "none"},
        }
    )
    cfg.trainer.eval_every = 0  # the metrics room's quick_eval needs the toy world, not the stand-in
    for k, v in overrides.items():
        OmegaConf.update(cfg, k, v, force_add=True)
    return cfg


def write_cfg(cfg, path) -> Path:
    path = Path(path)
    path.write_text(OmegaConf.to_yaml(cfg))
    return path


def main(cfg_paths: list[str]) -> None:
    """Train each config in turn (several configs share one process start-up)."""
    patch_data()
    from ldm_vs_gan.errors import UserError
    from ldm_vs_gan.training import run
    from ldm_vs_gan.training.guards import EXIT_STOPPED, StoppedEarly

    torch.set_num_threads(1)
    try:
        for cfg_path in cfg_paths:
            run(OmegaConf.load(cfg_path))
    except UserError as ex:
        print(f"error: {ex}", file=sys.stderr, flush=True)
        sys.exit(2)
    except StoppedEarly as ex:
        print(f"stopped: {ex}", file=sys.stderr, flush=True)
        sys.exit(EXIT_STOPPED)


if __name__ == "__main__":
    main(sys.argv[1:])
