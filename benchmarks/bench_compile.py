"""Toy LDM training images/s with ``trainer.compile`` false vs true, through the real loop.

Trains `make train`'s LDM (model=ldm on the toy world, its toy CLIP and VAE: trained on first use
if not cached, minutes once) for ``--images`` images twice, in fresh run dirs, once eager and
once compiled, and prints per run: the median img/s of the logged windows after the first (the
first holds the compilation), the first window's img/s, and the wall time including start-up
and compilation. No sample grids, evaluation or periodic checkpoints (they are not trained
steps).

    .venv/bin/python benchmarks/bench_compile.py [--images 8192] [--backend inductor]
        [--device auto] [KEY=VALUE ...]   (extra overrides for both runs)

On a CPU inductor compiles for a minute or more before the first step; the comparison that
matters is on a GPU.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def train(run_dir: Path, compile_on: bool, args) -> dict:
    overrides = [
        "model=ldm",
        "logger=none",
        f"run_dir={run_dir}",
        f"trainer.max_images={args.images}",
        f"trainer.log_every={args.log_every}",
        "trainer.sample_every=0",
        "trainer.eval_every=0",
        "trainer.ckpt_every=0",
        "trainer.progress=false",
        f"trainer.device={args.device}",
        f"trainer.compile={str(compile_on).lower()}",
        f"trainer.compile_backend={args.backend}",
        *args.overrides,
    ]
    env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONUNBUFFERED="1")
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "ldm_vs_gan.train", *overrides], cwd=REPO, env=env, check=True)
    wall = time.perf_counter() - t0
    rows = [json.loads(ln) for ln in (run_dir / "metrics.jsonl").read_text().splitlines()]
    ips = [float(r["img_per_s"]) for r in rows if "img_per_s" in r]
    return {
        "compile": compile_on,
        "img_per_s_after_first_window": round(statistics.median(ips[1:]), 1) if len(ips) > 1 else None,
        "img_per_s_first_window": round(ips[0], 1),
        "windows": len(ips),
        "wall_s": round(wall, 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=8192, help="images per run")
    ap.add_argument("--log-every", type=int, default=1024, help="images per timed window")
    ap.add_argument("--backend", default="inductor", help="trainer.compile_backend")
    ap.add_argument("--device", default="auto", help="trainer.device")
    ap.add_argument("overrides", nargs="*", help="more Hydra overrides for both runs")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench_compile-") as tmp:
        results = [train(Path(tmp) / f"compile-{c}", c, args) for c in (False, True)]
    for r in results:
        print(r, flush=True)
    eager, compiled = (r["img_per_s_after_first_window"] for r in results)
    if eager and compiled:
        print(f"compiled / eager img/s: {compiled / eager:.3f}")


if __name__ == "__main__":
    main()
