"""Training from precomputed shards vs on the fly: LDM training images/s on this CPU (fp32), and
what the precompute itself costs per image (``python -m ldm_vs_gan.precompute``).

The toy LDM (configs/model/ldm.yaml: toy UNet, batch 32) on a small toy world (``--n-train``
images, generated into a temporary cache), its CLIP and VAE with the toy stages' architectures
(configs/model/clip.yaml and vae.yaml ``arch``) and random weights: speed does not depend on the
weights, and no stage needs training. Each path trains ``--warmup`` images (the first step also
counts FLOPs), then ``--images`` more, through the real loop (``ldm_vs_gan.training.run``); the
rate is that of the images after the warm-up, from ``metrics.jsonl``; the two paths alternate
``--repeats`` times and the medians are printed. The on-the-fly path keeps
the toy defaults (PNG decoding, the VAE on every image, the CLIP text cache).

    .venv/bin/python benchmarks/bench_precompute.py [--images 512] [--warmup 64] [--n-train 1024]
        [--repeats 3] [--threads 1] [--tiny]

``--tiny``: experiment=ldm_tiny (tiny UNet, CLIP and VAE), a seconds-long check that it runs.
The machine may be shared: run ``uptime`` alongside.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402
from omegaconf import OmegaConf, open_dict  # noqa: E402

REPO = Path(__file__).resolve().parent.parent


def toy_components() -> dict:
    """The toy stages' architectures as random-weight ``clip`` / ``autoencoder`` nodes."""
    clip_arch = OmegaConf.load(REPO / "configs/model/clip.yaml").arch
    vae_arch = OmegaConf.load(REPO / "configs/model/vae.yaml").arch
    return {
        "clip": {"source": "random", "arch": clip_arch, "token_layer": 0},
        "autoencoder": {"source": "random", "arch": vae_arch, "latent": "mode"},
    }


def compose(overrides: list[str], tiny: bool):
    from ldm_vs_gan.train import compose_config

    cfg = compose_config(["model=ldm", "logger=none", *(["experiment=ldm_tiny"] if tiny else []), *overrides])
    if not tiny:
        with open_dict(cfg):
            for node, value in toy_components().items():
                cfg[node] = OmegaConf.create(value)
    return cfg


def train_rate(cfg, warmup: int) -> float:
    """Training images/s after the first ``warmup`` images (log windows of ``warmup`` images)."""
    from ldm_vs_gan.training import run

    rows = [json.loads(ln) for ln in (run(cfg) / "metrics.jsonl").read_text().splitlines()]
    rows = [r for r in rows if "img_per_s" in r and r["images_seen"] > warmup]
    seconds = sum(warmup / r["img_per_s"] for r in rows)
    return len(rows) * warmup / seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=512, help="images measured after the warm-up")
    ap.add_argument("--warmup", type=int, default=64, help="images before measuring (a multiple of 32)")
    ap.add_argument("--n-train", type=int, default=1024, help="toy world training images")
    ap.add_argument("--repeats", type=int, default=3, help="alternating runs per path (median)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--tiny", action="store_true", help="experiment=ldm_tiny: a quick check")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    tmp = Path(tempfile.mkdtemp(prefix="bench_precompute_"))
    os.environ["LDM_VS_GAN_CACHE"] = str(tmp / "cache")
    try:
        measure(a, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def measure(a, tmp: Path) -> None:
    trainer = [
        f"trainer.max_images={a.warmup + a.images}",
        f"trainer.log_every={a.warmup}",
        *("trainer.eval_every=0", "trainer.sample_every=0", "trainer.ckpt_every=0", "trainer.progress=false"),
    ]
    world = [f"data.n_train={a.n_train}", "data.n_heldout=64", f"data.shard_size={a.n_train}"]
    fly = [compose([*world, *trainer, f"run_dir={tmp / f'fly{i}'}"], a.tiny) for i in range(a.repeats)]
    from ldm_vs_gan.precompute import Options, precompute

    t0 = time.perf_counter()
    out = precompute(compose(world, a.tiny), Options(out=str(tmp / "pre"), splits="train"))
    total = time.perf_counter() - t0
    meta = json.loads((out / "meta.json").read_text())["splits"]["train"]
    per = meta["seconds"] / meta["n"]
    pre_data = ["data=laion", "data.precomputed=true", f"data.resolution={fly[0].data.resolution}"]
    pre_data += [f"data.shards={out}/train-*.tar", "data.num_workers=0"]
    pre = [compose([*pre_data, *trainer, f"run_dir={tmp / f'pre{i}'}"], a.tiny) for i in range(a.repeats)]
    rates = [(train_rate(f, a.warmup), train_rate(p, a.warmup)) for f, p in zip(fly, pre)]  # alternating
    r_fly, r_pre = (statistics.median(r) for r in zip(*rates))
    size = sum(p.stat().st_size for p in out.glob("train-*.tar")) / meta["n"]
    saved = 1 / r_fly - 1 / r_pre
    what = "tiny" if a.tiny else "toy"
    print(
        f"{what} LDM, batch {fly[0].trainer.batch_size}, {a.threads} thread(s), {a.images} images after "
        f"{a.warmup}, median of {a.repeats} alternating runs:"
    )
    print(f"  on the fly:       {r_fly:8.1f} img/s   (runs: {', '.join(f'{r:.1f}' for r, _ in rates)})")
    print(f"  precomputed:      {r_pre:8.1f} img/s   (runs: {', '.join(f'{r:.1f}' for _, r in rates)})")
    print(f"  speed-up:         x{r_pre / r_fly:.2f} per training image")
    print(
        f"  precompute:       {per * 1e3:8.2f} ms/image encoding ({total:.1f} s in all, {size / 1024:.1f} KiB/image)"
    )
    if saved > 0:
        print(
            f"  pays for itself after {per * a.n_train / saved:.0f} training images ({a.n_train} precomputed)"
        )


if __name__ == "__main__":
    main()
