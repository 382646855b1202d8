"""Train the two toy pre-training stages at their DEFAULT configs; print their quality and cost.

    python benchmarks/bench_stages.py                 # both stages, default toy world (32 px)
    python benchmarks/bench_stages.py --stages vae    # one stage
    python benchmarks/bench_stages.py --out /tmp/stages --threads 2
    python benchmarks/bench_stages.py --stages vae --judge 1000   # + judge accuracy on reconstructions

Each stage is composed exactly as first-use resolution does (``configs/model/<stage>.yaml`` with its
``configs/trainer/<stage>_stage.yaml`` budget; ``ldm_vs_gan/components/resolve.py``) and trained through the engine
(``ldm_vs_gan.training.run``) into a fresh run dir. Printed per stage: the held-out metric of the
final evaluation (CLIP: text->image retrieval top-1 on single- and two-object captions; VAE:
reconstruction PSNR in dB and the measured latent scaling factor), wall time, the process's CPU
time, and the 1-minute load average before/after (the machine is shared: CPU time / threads is
the better estimate of the wall time on a quiet machine).
Targets of the stages: retrieval top-1 >= 0.90 (single-object), PSNR >= 28 dB, each stage < 5 min.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "offline")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--stages", default="clip,vae", help="comma list: clip, vae")
    ap.add_argument("--out", default="/tmp/bench_stages", help="parent folder of the run dirs (wiped)")
    ap.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    ap.add_argument(
        "--judge",
        type=int,
        default=0,
        metavar="N",
        help="VAE: also judge the reconstructions of the first N held-out images with the toy judge "
        "(trained on first use): can the LDM's latent space still say which shape it holds?",
    )
    ap.add_argument(
        "overrides", nargs="*", help="extra Hydra overrides for the stage (e.g. trainer.max_images=5000)"
    )
    args = ap.parse_args()

    import torch
    from hydra import compose, initialize_config_dir

    from ldm_vs_gan.toy.stages import _config_dir, stage_config
    from ldm_vs_gan.training import run

    torch.set_num_threads(args.threads)
    with initialize_config_dir(str(_config_dir()), version_base="1.3"):
        data = compose("train").data
    results = {}
    for kind in [s.strip() for s in args.stages.split(",") if s.strip()]:
        cfg = stage_config(kind, {"stage_overrides": list(args.overrides)}, data)
        run_dir = Path(args.out) / kind
        shutil.rmtree(run_dir, ignore_errors=True)
        cfg.run_dir = str(run_dir)
        load0, c0, t0 = os.getloadavg()[0], time.process_time(), time.perf_counter()
        run(cfg)
        wall, cpu, load1 = time.perf_counter() - t0, time.process_time() - c0, os.getloadavg()[0]
        rows = [json.loads(ln) for ln in (run_dir / "metrics.jsonl").read_text().splitlines()]
        ev = [r for r in rows if any(k.startswith("eval/") for k in r)][-1]
        res = {
            "images": int(cfg.trainer.max_images),
            "batch": int(cfg.trainer.batch_size),
            "wall_s": round(wall, 1),
            "cpu_s": round(cpu, 1),
            "threads": args.threads,
            "load1_before": round(load0, 2),
            "load1_after": round(load1, 2),
            **{k[5:]: round(v, 4) for k, v in ev.items() if k.startswith("eval/")},
            "run_dir": str(run_dir),
        }
        if kind == "vae" and args.judge:
            res.update(judge_reconstructions(run_dir, data, args.judge))
        results[kind] = res
        print(f"== stage {kind}: " + json.dumps(res), flush=True)
    print(json.dumps(results, indent=2))


def judge_reconstructions(run_dir: Path, data, n: int) -> dict:
    """Toy-judge accuracy on held-out reconstructions (the originals score 1.0 on every attribute)."""
    import torch

    from ldm_vs_gan.toy.judge import ensure_judge, load_judge, load_split
    from ldm_vs_gan.training.rundir import load_run

    family, _, _ = load_run(run_dir, weights="raw")
    images, attrs = load_split(data, "heldout")
    images, attrs = images[:n], attrs[:n]
    with torch.no_grad():
        rec = torch.cat([family.reconstruct(b.float() / 127.5 - 1) for b in images.split(200)])
    ensure_judge(data)
    fid = load_judge(data).fidelity(((rec.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8), attrs)
    return {f"recon_judge_{k.replace('/', '_')}": round(fid[k], 4) for k in ("single/shape", "two/shape")}


if __name__ == "__main__":
    main()
