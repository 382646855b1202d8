"""GALIP speed on this CPU (fp32): training images/s (one D step + one G step, Adam, as the loop
runs them) and sampling images/s (``generate``: one G forward incl. the prompted ViT pass).

Configurations:
  toy      the toy defaults (configs/model/galip.yaml, incl. their opt-in terms) on the toy CLIP architecture
           (configs/model/clip.yaml `arch`, random weights: speed does not depend on them), 32 px
  vit_b32  official widths on open_clip ViT-B-32 (random weights), 224 px

    .venv/bin/python benchmarks/bench_galip.py [--configs toy vit_b32] [--batch 8] [--steps 3]
        [--threads 2]

Prints one line per configuration. The machine may be shared: run `uptime` alongside.

Quality of a trained toy run (prompt fidelity and mode collapse, with the toy judge):

    .venv/bin/python benchmarks/bench_galip.py --quality RUN_DIR [--n 512] [--groups 16] [--seeds 8]

fidelity: judge fidelity on the first n held-out prompts (seed i for prompt i); diversity: for
``groups`` prompts seen at least ``seeds`` times in the held-out pool, the mean pairwise cosine
distance of judge features between the generated images of one prompt (one per member caption,
different seeds), against the same figure on the real images of those groups (ratio near 1 =
healthy, near 0 = one image per prompt).
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402
from omegaconf import OmegaConf  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
OFFICIAL = {
    "z_dim": 100,
    "generator": {
        "bridge_channels": 64,
        "bridge_mid_channels": 32,
        "bridge_blocks": 4,
        "ngf": 64,
        "max_mult": 8,
    },
    "discriminator": {"out_channels": 512, "assessor_channels": 128},
    # the official objective (the toy defaults may add augmentation or extra terms)
    "loss": {"mode_seeking": 0.0},
    "augment": {"translation": 0.0},
}


def build(name: str):
    from ldm_vs_gan.components import FrozenCLIP
    from ldm_vs_gan.components.clip import bpe_tokenizer, build_open_clip
    from ldm_vs_gan.galip.family import GALIPFamily

    model_cfg = OmegaConf.load(REPO / "configs/model/galip.yaml")
    model_cfg.pop("defaults", None)  # Hydra's defaults list (the budget preset), not a model key
    if name == "toy":
        arch = OmegaConf.to_container(OmegaConf.load(REPO / "configs/model/clip.yaml").arch)
        v = arch["vision_cfg"]
        res = 32
        v["image_size"] = res
        v["patch_size"] = res // v.pop("grid")
        clip = FrozenCLIP(build_open_clip(arch), bpe_tokenizer(arch["text_cfg"]["context_length"]))
    elif name == "vit_b32":
        import open_clip

        res = 224
        clip = FrozenCLIP(build_open_clip(open_clip.get_model_config("ViT-B-32")), bpe_tokenizer(77))
        model_cfg = OmegaConf.merge(model_cfg, OmegaConf.create(OFFICIAL))
    else:
        raise SystemExit(f"unknown configuration {name!r}; choose toy or vit_b32")
    return GALIPFamily(clip, model_cfg, res), res


def bench(name: str, batch: int, steps: int) -> dict:
    from ldm_vs_gan.data.batch import Batch
    from ldm_vs_gan.training.family import StepContext

    torch.manual_seed(0)
    fam, res = build(name)
    nets = fam.networks()
    opts = {
        ph.name: torch.optim.Adam(
            [p for n in ph.networks for p in nets[n].parameters()],
            lr=ph.optimizer.lr,
            betas=ph.optimizer.betas,
        )
        for ph in fam.phases()
    }
    caps = ["a small red circle", "a large blue square to the left of a green cross"] * batch
    b = Batch(torch.rand(batch, 3, res, res) * 2 - 1, caps[:batch])

    def step():
        scratch: dict = {}  # one per step, shared by its phases, as the loop does (no DDP here)
        for ph in fam.phases():
            on = set(ph.networks) | set(ph.records_graph_for)
            for n, m in nets.items():
                m.requires_grad_(n in on)
            opts[ph.name].zero_grad(set_to_none=True)
            loss, _ = fam.loss(ph.name, b, StepContext(nets=nets, scratch=scratch, share_across_phases=True))
            loss.backward()
            opts[ph.name].step()

    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter:  # doubles as the warm-up step (allocator, first-call overheads)
        step()
    train_gflop = counter.get_total_flops() / batch / 1e9
    t = time.perf_counter()
    for _ in range(steps):
        step()
    train_ips = steps * batch / (time.perf_counter() - t)
    counter = FlopCounterMode(display=False)
    with counter:
        fam.generate(caps[:batch], list(range(batch)))
    sample_gflop = counter.get_total_flops() / batch / 1e9
    t = time.perf_counter()
    for i in range(steps):
        fam.generate(caps[:batch], list(range(i * batch, (i + 1) * batch)))
    sample_ips = steps * batch / (time.perf_counter() - t)
    g = sum(p.numel() for p in fam.generator.parameters())
    d = sum(p.numel() for p in fam.discriminator.parameters())
    return {
        "config": name,
        "resolution": res,
        "batch": batch,
        "G_params_M": round(g / 1e6, 2),
        "D_params_M": round(d / 1e6, 2),
        "train_img_per_s": round(train_ips, 2),
        "sample_img_per_s": round(sample_ips, 2),
        "train_gflop_per_img": round(train_gflop, 2),
        "sample_gflop_per_img": round(sample_gflop, 3),
    }


def quality(
    run_dir: str, n: int, groups: int, seeds: int, data_overrides: list[str], grid: str | None
) -> dict:
    from ldm_vs_gan.data import heldout_batch
    from ldm_vs_gan.metrics.diversity import group_diversity, pick_prompt_groups
    from ldm_vs_gan.metrics.quick import to_uint8
    from ldm_vs_gan.toy.judge import ensure_judge, load_judge
    from ldm_vs_gan.training import load_run

    fam, cfg, info = load_run(run_dir)
    for ov in data_overrides:  # e.g. judge.epochs=3 to use an already cached judge
        key, value = ov.split("=", 1)
        OmegaConf.update(cfg.data, key, OmegaConf.create({"v": value}).v, force_add=True)
    ensure_judge(cfg.data)
    judge = load_judge(cfg.data)
    pool = heldout_batch(cfg.data, max(n, 1024))

    def gen(caps, seed0):
        return torch.cat(
            [
                fam.generate(caps[i : i + 64], list(range(seed0 + i, seed0 + i + len(caps[i : i + 64]))))
                for i in range(0, len(caps), 64)
            ]
        )

    t = time.perf_counter()
    fake = gen(pool.captions[:n], 0)
    fid = judge.fidelity(fake, pool.attributes[:n])
    sample_s = time.perf_counter() - t
    idx = pick_prompt_groups(pool.captions, pool.attributes, groups, seeds)
    fake_groups = [
        judge.features(gen([pool.captions[i] for i in g], 10_000 + 100 * k)).numpy()
        for k, g in enumerate(idx)
    ]
    real_groups = [judge.features(to_uint8(pool.images[g])).numpy() for g in idx]
    div_fake, div_real = group_diversity(fake_groups), group_diversity(real_groups)
    if grid:  # rows: 8 prompts; columns: 8 seeds (mode collapse shows as identical rows)
        from torchvision.utils import save_image

        caps = [pool.captions[g[0]] for g in idx[:8]]
        rows = [
            fam.generate([c] * 8, list(range(20_000 + 8 * r, 20_000 + 8 * r + 8))) for r, c in enumerate(caps)
        ]
        save_image(torch.cat(rows).float() / 255, grid, nrow=8, padding=1)
        Path(grid).with_suffix(".txt").write_text("\n".join(caps) + "\n")
    return {
        "run": run_dir,
        "images_seen": info.get("images_seen"),
        "n": n,
        "single/overall": round(fid["single/overall"], 4),
        "single/strict": round(fid["single/strict"], 4),
        "two/overall": round(fid["two/overall"], 4),
        "overall": round(fid["overall"], 4),
        "diversity_groups": f"{len(idx)}x{seeds}",
        "diversity_fake": round(div_fake, 4),
        "diversity_real": round(div_real, 4),
        "diversity_ratio": round(div_fake / div_real, 3),
        "sampling_img_per_s": round(n / sample_s, 1),
        "judge": judge.name,
    }


def flops_only(name: str) -> dict:
    """GFLOP per image of a training step (D + G) and of sampling, counted on the meta device
    (shapes only: instant, load-independent; divide by an achieved GFLOP/s to get img/s)."""
    from torch.utils.flop_counter import FlopCounterMode

    from ldm_vs_gan.data.batch import Batch
    from ldm_vs_gan.training.family import StepContext

    with torch.device("meta"):
        fam, res = build(name)
    nets, n = fam.networks(), 2
    b = Batch(torch.zeros(n, 3, res, res, device="meta"), ["a small red circle"] * n)
    out = {"config": name, "resolution": res}
    scratch: dict = {}  # both phases of one step, as the loop runs them
    for ph in fam.phases():
        on = set(ph.networks) | set(ph.records_graph_for)
        for k, m in nets.items():
            m.requires_grad_(k in on)
        c = FlopCounterMode(display=False)
        with c:
            loss, _ = fam.loss(ph.name, b, StepContext(nets=nets, scratch=scratch, share_across_phases=True))
            loss.backward()
        out[f"{ph.name}_gflop_per_img"] = round(c.get_total_flops() / n / 1e9, 2)
    c = FlopCounterMode(display=False)
    with c, torch.no_grad():
        fam.generator(
            torch.zeros(n, fam.z_dim, device="meta"), torch.zeros(n, fam.clip.embed_dim, device="meta")
        )
    out["sample_gflop_per_img"] = round(c.get_total_flops() / n / 1e9, 3)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--configs", nargs="+", default=["toy", "vit_b32"])
    ap.add_argument("--batch", type=int, default=8, help="images per step (both phases)")
    ap.add_argument("--steps", type=int, default=3, help="timed steps after one warm-up step")
    ap.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    ap.add_argument("--flops-only", action="store_true", help="count GFLOP/img on the meta device, no timing")
    ap.add_argument("--quality", metavar="RUN_DIR", help="judge fidelity and diversity of a toy run")
    ap.add_argument("--n", type=int, default=512, help="--quality: held-out prompts for fidelity")
    ap.add_argument("--groups", type=int, default=16, help="--quality: prompts for diversity")
    ap.add_argument("--seeds", type=int, default=8, help="--quality: images per diversity prompt")
    ap.add_argument(
        "--data", nargs="*", default=[], metavar="KEY=VALUE", help="--quality: data config overrides"
    )
    ap.add_argument("--grid", help="--quality: write an 8 prompts x 8 seeds PNG grid here")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.quality:
        print(quality(args.quality, args.n, args.groups, args.seeds, args.data, args.grid), flush=True)
        return
    print(f"torch {torch.__version__}, {args.threads} threads, fp32, load average {os.getloadavg()}")
    a, b = torch.randn(1024, 1024), torch.randn(1024, 1024)
    a @ b
    t = time.perf_counter()
    for _ in range(5):
        a @ b
    print(
        f"fp32 GEMM 1024^3 right now: {5 * 2 * 1024**3 / (time.perf_counter() - t) / 1e9:.1f} GFLOP/s "
        "(about 270 on 2 idle cores: scale the img/s below by the ratio when the machine is shared)"
    )
    for name in args.configs:
        print(flops_only(name) if args.flops_only else bench(name, args.batch, args.steps), flush=True)


if __name__ == "__main__":
    main()
