"""Step overhead of the training loop over a bare forward/backward/optimizer step.

Both sides train the engine's test family (``configs/model/regress.yaml``, widened so a step does
real work) on the same in-memory batches, fp32 on CPU, one thread:

- bare:   for each phase: zero_grad, loss, backward, optimizer step (nothing else);
- bare+EMA: the same plus the EMA update (a feature, not overhead, but it costs a pass over the
  weights, so it is shown apart);
- engine: ``ldm_vs_gan.training.run`` with logging at two points only, no samples, no evaluation,
  no periodic checkpoints. Its step time is the time between two batch requests of the loop
  (everything the loop does per step), taken by the stand-in loader.

The statistic is the median per-step **CPU time** of this process (``time.process_time``, one
thread) over all steps but the first five: robust on a shared machine where wall time depends on
the neighbours. Median wall times are printed next to it.

    .venv/bin/python benchmarks/bench_loop.py [--steps 200] [--batch 64] [--hidden 512]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "offline")
import torch  # noqa: E402
from omegaconf import OmegaConf  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from ldm_vs_gan.data.batch import Batch  # noqa: E402
from ldm_vs_gan.training.family import StepContext  # noqa: E402


def make_batches(n: int, batch: int, res: int) -> list[Batch]:
    g = torch.Generator().manual_seed(0)
    return [
        Batch(torch.rand(batch, 3, res, res, generator=g) * 2 - 1, [f"caption {i}-{j}" for j in range(batch)])
        for i in range(n)
    ]


def config(run_dir, steps, batch, hidden, res, ema_every=1) -> OmegaConf:
    t = OmegaConf.load(REPO / "configs/trainer/default.yaml")
    t.merge_with(
        {
            "max_images": steps * batch,
            "batch_size": batch,
            "log_every": steps * batch // 2,
            "sample_every": 0,
            "eval_every": 0,
            "ckpt_every": 0,
            "progress": False,
            "precision": "fp32",
            "device": "cpu",
            "ema": {"every": ema_every},
        }
    )
    model = OmegaConf.load(REPO / "configs/model/regress.yaml")
    model.hidden = hidden
    model.grad_clip = None  # clipping is a family setting; the bare step has none, so neither here
    return OmegaConf.create(
        {
            "seed": 0,
            "run_dir": str(run_dir),
            "init_from": None,
            "model": model,
            "data": {"name": "bench", "resolution": res},
            "trainer": t,
            "logger": {"name": "none"},
        }
    )


def _medians(stamps: list[tuple[float, float]], warm: int = 5) -> tuple[float, float]:
    """Median per-step (cpu, wall) seconds from successive (process_time, perf_counter) stamps."""
    cpu = [b[0] - a[0] for a, b in zip(stamps[warm:], stamps[warm + 1 :])]
    wall = [b[1] - a[1] for a, b in zip(stamps[warm:], stamps[warm + 1 :])]
    return statistics.median(cpu), statistics.median(wall)


def _stamp() -> tuple[float, float]:
    return time.process_time(), time.perf_counter()


def bare(cfg, batches, ema: bool) -> tuple[float, float]:
    from hydra.utils import get_class

    from ldm_vs_gan.training.ema import EMA
    from ldm_vs_gan.training.optim import build_optimizer

    fam = get_class(cfg.model._target_).from_config(cfg)
    nets = fam.networks()
    phases = fam.phases()
    opts = {
        p.name: build_optimizer(p.optimizer, [q for n in p.networks for q in nets[n].parameters()], p.name)
        for p in phases
    }
    avg = EMA(nets[fam.ema_network], 0.999) if ema else None
    ctx = StepContext(nets=nets)
    stamps = []
    for b in batches:
        stamps.append(_stamp())
        for p in phases:
            opts[p.name].zero_grad(set_to_none=True)
            loss, _ = fam.loss(p.name, b, ctx)
            loss.backward()
            opts[p.name].step()
        if avg is not None:
            avg.update()
    stamps.append(_stamp())
    return _medians(stamps)


def engine(cfg, batches) -> tuple[float, float]:
    import ldm_vs_gan.data as data
    from ldm_vs_gan.training import run

    stamps = []

    def loader(*a, **k):
        for b in batches:  # the loop asks for exactly len(batches) batches
            stamps.append(_stamp())
            yield b

    data.build_loader = loader
    with tempfile.TemporaryDirectory() as d:
        cfg.run_dir = d
        run(cfg)
    return _medians(stamps)  # intervals between requests: whole loop iterations


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--hidden", type=int, default=512)
    ap.add_argument("--res", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--ema-every", type=int, default=1, help="trainer.ema.every of the engine run")
    args = ap.parse_args()
    torch.set_num_threads(1)
    batches = make_batches(args.steps, args.batch, args.res)
    cfg = config("unused", args.steps, args.batch, args.hidden, args.res, args.ema_every)
    res = {"bare": [], "bare+ema": [], "engine": []}
    for _ in range(args.repeats):  # interleaved, so load changes on a shared machine hit all three
        res["bare"].append(bare(cfg, batches, ema=False))
        res["bare+ema"].append(bare(cfg, batches, ema=True))
        res["engine"].append(engine(cfg.copy(), batches))
    cpu = {k: statistics.median(c for c, _ in v) for k, v in res.items()}
    wall = {k: statistics.median(w for _, w in v) for k, v in res.items()}
    print(
        f"regress family hidden={args.hidden} batch={args.batch} res={args.res}, {args.steps} steps, "
        f"1 thread, fp32, engine trainer.ema.every={args.ema_every}, median of {args.repeats} runs"
    )
    for k in res:
        print(
            f"  {k:9s} cpu {1000 * cpu[k]:7.2f} ms/step ({args.batch / cpu[k]:7.1f} img/s)   "
            f"wall {1000 * wall[k]:7.2f} ms/step   per-run cpu: "
            + ", ".join(f"{1000 * c:.2f}" for c, _ in res[k])
        )
    print(
        f"  engine overhead over bare step:     {100 * (cpu['engine'] / cpu['bare'] - 1):+.1f}% (cpu), "
        f"{100 * (wall['engine'] / wall['bare'] - 1):+.1f}% (wall)"
    )
    print(
        f"  engine overhead over bare step+EMA: {100 * (cpu['engine'] / cpu['bare+ema'] - 1):+.1f}% (cpu), "
        f"{100 * (wall['engine'] / wall['bare+ema'] - 1):+.1f}% (wall)"
    )


if __name__ == "__main__":
    main()
