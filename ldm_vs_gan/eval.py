"""Evaluate a run: ``python -m ldm_vs_gan.eval --metric fid|is|kid|clip_score|fidelity|diversity|all
--run RUN_DIR [...]``.

Defaults follow the run: a toy-world run is judged on the toy held-out split in the toy judge's
feature space; any other run on its own held-out split (``data.heldout_shards`` and the like), or
on any shards given with ``--shards``, or on COCO captions (``--data coco``: one random caption
per image, seeded), in the standard Inception space when its weights are on this machine and in
the run's own CLIP space otherwise (the choice is recorded). Generation is sharded across ranks under ``torchrun`` and gathered (exactly N
images, each once); metrics are computed on rank 0. Prints one line per metric (``fid: 12.34``)
and writes ``RUN_DIR/eval/eval_<tag>.json``: ``{"metrics": {...}, "provenance": {...}}``. Bad
flag values, missing weights and damaged weight files are one line (exit status 2) before any
image is generated.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ldm_vs_gan import distributed
from ldm_vs_gan.distributed import DistInfo
from ldm_vs_gan.errors import MissingWeightsError, UserError, bad_value
from ldm_vs_gan.metrics import prompt_sets
from ldm_vs_gan.sample import ArgParser, at_least, check_run, resolve_device

METRICS = ("fid", "is", "kid", "prdc", "cmmd", "clip_score", "fidelity", "diversity")
DATA = prompt_sets.DATA
CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def parse_args(argv=None) -> argparse.Namespace:
    p = ArgParser(prog="python -m ldm_vs_gan.eval", description=__doc__.split("\n\n")[0])
    p.add_argument("--metric", default="all", help=f"comma list of {', '.join(METRICS)} or all")
    p.add_argument("--run", required=True, help="run directory (config.yaml + weights/)")
    p.add_argument(
        "--data",
        choices=DATA,
        default=None,
        help="prompts and real images: toy (toy runs' default), heldout (the run's own held-out split: "
        "other runs' default), shards (--shards), coco (--coco-root)",
    )
    p.add_argument(
        "--shards",
        default=None,
        help="held-out webdataset shards to evaluate on (path, glob or '{000..009}' pattern; implies --data shards)",
    )
    p.add_argument(
        "--num-samples",
        type=int,
        default=None,
        help="N (default: toy 1000, coco 30000, heldout/shards: all held-out samples up to 30000)",
    )
    p.add_argument("--batch-size", type=int, default=64, help="generation batch per rank")
    p.add_argument("--seed", type=int, default=0, help="base seed: generation seeds and COCO caption choice")
    p.add_argument("--sampler", default=None, help="sampler override (families that have one)")
    p.add_argument("--steps", type=int, default=None, help="sampling steps override (NFE sweeps)")
    p.add_argument("--guidance", type=float, default=None, help="classifier-free guidance scale override")
    p.add_argument(
        "--truncation", type=float, default=None, help="GAN truncation of z override (trade-off sweeps)"
    )
    p.add_argument(
        "--feature",
        choices=("inception", "clip", "dinov2", "toy"),
        default=None,
        help="feature space of FID/KID/PRDC/diversity: inception, clip, dinov2 (DINOv2 ViT-L/14 CLS, "
        "FD-DINOv2 as dgm-eval; needs --dinov2-repo and --dinov2-weights) or toy (default: toy for toy "
        "data; else inception when its weights are on this machine, else the run's CLIP)",
    )
    p.add_argument("--coco-root", default=None, help="local COCO folder (annotations/ + val2014/)")
    p.add_argument("--inception-weights", default=None, help="local torch-fidelity Inception weights file")
    p.add_argument(
        "--dinov2-repo",
        default=None,
        help="local clone of facebookresearch/dinov2 (its hubconf builds the ViT)",
    )
    p.add_argument(
        "--dinov2-weights", default=None, help="local dinov2_vitl14_pretrain.pth (--feature dinov2)"
    )
    p.add_argument(
        "--clip-score-clip",
        default=None,
        help="clip config name (configs/clip/<name>.yaml) for CLIP score and CMMD; default: the run's CLIP",
    )
    p.add_argument(
        "--prdc-k", type=int, default=5, help="k nearest neighbours of precision/recall/density/coverage"
    )
    p.add_argument(
        "--resize",
        choices=("legacy", "clean"),
        default="legacy",
        help="Inception resize: legacy (torch-fidelity TF1 bilinear, as published FIDs) or clean (clean-fid PIL bicubic)",
    )
    p.add_argument("--diversity-prompts", type=int, default=16, help="K prompts for diversity")
    p.add_argument("--diversity-seeds", type=int, default=8, help="M seeds per prompt for diversity")
    p.add_argument("--weights", choices=("ema", "raw"), default="ema", help="EMA weights (default) or live")
    p.add_argument("--out", default=None, help="JSON path (default: RUN_DIR/eval/eval_<tag>.json)")
    p.add_argument("--device", default=None, help="cpu | cuda | cuda:N (default: this rank's GPU, else cpu)")
    return p.parse_args(argv)


def _metrics(spec: str) -> list[str]:
    names = list(METRICS) if spec == "all" else [m.strip() for m in spec.split(",") if m.strip()]
    for m in names or [spec]:
        if m not in METRICS:
            raise bad_value("--metric", m, (*METRICS, "all"))
    return names


def _check_args(args) -> str:
    """Every flag checked before any work (generation may take hours); returns the device."""
    for flag, low in (("--num-samples", 1), ("--batch-size", 1), ("--steps", 1)):
        at_least(flag, getattr(args, flag[2:].replace("-", "_")), low)
    at_least("--diversity-prompts", args.diversity_prompts, 1)
    at_least("--prdc-k", args.prdc_k, 1)
    at_least("--diversity-seeds", args.diversity_seeds, 2)  # a spread needs two images per prompt
    if not 0 <= args.seed < 2**63:
        raise UserError(f"--seed={args.seed} is not allowed; choose an integer in [0, 2**63)")
    _check_out(args.out)
    if args.inception_weights and not Path(args.inception_weights).expanduser().is_file():
        raise MissingWeightsError(f"--inception-weights={args.inception_weights!r} is not a file")
    _check_dinov2(args)
    check_run(args.run)
    return resolve_device(args.device)


def _check_dinov2(args) -> None:
    """DINOv2's code and weights located (and the file's format checked) now, not after generation."""
    from ldm_vs_gan.metrics.features import resolve_dinov2

    if args.feature == "dinov2":
        resolve_dinov2(args.dinov2_repo, args.dinov2_weights)
    elif args.dinov2_repo or args.dinov2_weights:
        raise UserError(
            "--dinov2-repo and --dinov2-weights apply to --feature dinov2 only "
            f"(--feature is {args.feature or 'not given'})"
        )


def _check_out(out: str | None) -> None:
    """``--out`` must be a writable file path: said now, not after the generation."""
    if out is None:
        return
    if Path(out).is_dir():
        raise UserError(f"--out={out!r} is a folder; give the path of the JSON file")
    try:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
    except OSError as ex:
        raise UserError(f"--out={out!r}: its folder cannot be created ({ex.strerror})") from None
    if not os.access(Path(out).parent, os.W_OK):
        raise UserError(f"--out={out!r}: its folder is not writable")


def _score_clip_cfg(args, names: list[str]):
    """The config of ``--clip-score-clip`` (None: the run's own CLIP), its weights located now."""
    if not {"clip_score", "cmmd"} & set(names) or not args.clip_score_clip:
        return None
    from omegaconf import OmegaConf

    from ldm_vs_gan.components import check_available

    path = CONFIGS / "clip" / f"{args.clip_score_clip}.yaml"
    if not path.is_file():
        raise bad_value(
            "--clip-score-clip", args.clip_score_clip, sorted(p.stem for p in path.parent.glob("*.yaml"))
        )
    ccfg = OmegaConf.load(path)
    check_available(clip=ccfg)
    return ccfg


def _sampling(family, args) -> dict:
    """Family defaults merged with the overrides given; an override the family lacks is an error."""
    defaults = dict(family.sampling_defaults())
    overrides = {
        "sampler": args.sampler,
        "steps": args.steps,
        "guidance": args.guidance,
        "truncation": args.truncation,
    }
    for k, v in overrides.items():
        if v is None:
            continue
        if k not in defaults:
            raise UserError(
                f"--{k} does not apply to {type(family).__name__} "
                f"(its sampling settings: {', '.join(defaults) or 'none'})"
            )
        defaults[k] = v
    return defaults


def _extractor(kind, cfg, ps, args, clip_holder):
    from ldm_vs_gan.metrics.features import build_extractor

    if kind == "toy" and ps["data_cfg"] is None:
        raise bad_value("--feature", "toy", "inception, clip (the toy judge only knows the toy world)")
    if kind == "dinov2":  # a ViT-L: on the evaluation's device (it moves the images there itself)
        ext = build_extractor(kind, dinov2_repo=args.dinov2_repo, dinov2_weights=args.dinov2_weights)
        return ext.to(clip_holder.device)
    clip, label = clip_holder() if kind == "clip" else (None, None)
    return build_extractor(
        kind,
        data_cfg=ps["data_cfg"],
        clip=clip,
        clip_label=label or "clip",
        inception_weights=args.inception_weights,
        resize=args.resize,
    )


class _ScoringClip:
    """The CLIP of CLIP score and of ``--feature clip``: built on first use, once."""

    def __init__(self, score_cfg, label: str | None, family, cfg, device: str):
        self.score_cfg, self.label, self.family, self.cfg, self.device = score_cfg, label, family, cfg, device
        self.same: bool | None = None  # the CLIP the run trained with? known once built
        self._built = None

    def __call__(self) -> tuple:
        """(clip module on the device, its label)"""
        if self._built is None:
            self._built, self.same = self._build()
        return self._built

    def _build(self) -> tuple:
        from omegaconf import OmegaConf

        from ldm_vs_gan.components import build_clip

        cfg = self.cfg
        if self.score_cfg is not None:
            same = OmegaConf.to_container(self.score_cfg, resolve=True) == OmegaConf.to_container(
                cfg.clip, resolve=True
            )
            return (build_clip(self.score_cfg, data_cfg=cfg.data).to(self.device), self.label), same
        # the run's own CLIP: the very instance the family holds, when it holds one
        own = getattr(self.family, "clip", None)
        clip = (
            own
            if own is not None and hasattr(own, "encode_image")
            else build_clip(cfg.clip, data_cfg=cfg.data)
        )
        return (clip.to(self.device), "run"), True


@dataclass
class _Eval:
    """One evaluation once set up: its flags, place in the group, run, prompt set and settings."""

    args: argparse.Namespace
    names: list[str]
    device: str
    dist: DistInfo
    family: Any
    cfg: Any
    info: dict
    data: str  # toy | coco
    n: int
    feature: str
    sampling: dict
    ps: dict
    clip: _ScoringClip
    skipped: dict  # metric -> why it was left out


@dataclass
class _Generated:
    fake: torch.Tensor
    sec_per_image: float
    pool: dict | None = None  # the prompt set the diversity groups index into
    div_groups: list | None = None
    div_fake: torch.Tensor | None = None


def evaluate(args) -> dict | None:
    """Generate on every rank, measure and write on rank 0 (which returns the JSON's content)."""
    ev = _set_up(args)
    gen = _generate(ev)
    if not ev.dist.is_main:
        return None
    results: dict[str, float] = {}
    skipped: dict[str, str] = dict(ev.skipped)
    ext, real = _feature_metrics(ev, gen, results)
    _inception_score(ev, gen.fake, results, skipped)
    _clip_score(ev, gen.fake, results)
    _cmmd(ev, gen.fake, results)
    _fidelity(ev, gen.fake, results)
    out = {"metrics": results, "provenance": _provenance(ev, gen, ext, real, skipped)}
    path = _write(ev, out)
    for k, v in results.items():
        print(f"{k}: {v:.4f}" if isinstance(v, float) else f"{k}: {v}")
    print(f"seconds_per_image: {gen.sec_per_image:.4f}")
    for k, why in skipped.items():
        print(f"{k}: skipped ({why})")
    print(f"wrote {path}")
    return out


def _set_up(args) -> _Eval:
    """Flags, the process group, the run, the sampling settings and the prompt set, in this order:
    every mistake is found here, before any image is generated."""
    from ldm_vs_gan import plugins
    from ldm_vs_gan.training import load_run
    from ldm_vs_gan.training.rundir import run_config

    names = _metrics(args.metric)
    device = _check_args(args)
    score_cfg = _score_clip_cfg(args, names)
    dist = distributed.setup(torch.device(device))
    plugins.prepare(run_config(args.run), "eval")  # first-use data and models (the toy world's)
    family, cfg, info = load_run(args.run, weights=args.weights, device=device)
    data = prompt_sets.data_choice(args, cfg)
    if "fidelity" in names and data != "toy":
        raise bad_value(
            "--metric", "fidelity", "fid, is, kid, clip_score, diversity (fidelity needs the toy judge)"
        )
    feature, why = prompt_sets.feature_choice(args, data)
    sampling = _sampling(family, args)
    ps = prompt_sets.prompt_set(cfg, data, args.num_samples, args.seed, args.coco_root, args.shards)
    ps["prov"]["feature_choice"] = why
    n = len(ps["captions"])
    skipped = _too_few_for_kid(names, n, args.metric)
    clip = _ScoringClip(score_cfg, args.clip_score_clip, family, cfg, device)
    return _Eval(args, names, device, dist, family, cfg, info, data, n, feature, sampling, ps, clip, skipped)


def _too_few_for_kid(names: list[str], n: int, metric: str) -> dict[str, str]:
    """KID on fewer samples than two of its smallest subsets: refused before any image is made
    (``--metric all`` leaves it out and says why)."""
    from ldm_vs_gan.metrics.fid import KID_MIN_SUBSET

    if "kid" not in names or n >= 2 * KID_MIN_SUBSET:
        return {}
    why = f"KID needs at least {2 * KID_MIN_SUBSET} samples, the prompt set has {n}"
    if metric != "all":
        raise UserError(f"{why}: raise --num-samples or leave kid out of --metric")
    names.remove("kid")
    return {"kid": why}


def _generate(ev: _Eval) -> _Generated:
    """The N evaluation images and, for diversity, K prompts x M seeds (sharded, on every rank)."""
    from ldm_vs_gan.metrics.generation import eval_seeds, generate_sharded

    args = ev.args
    shard = {"batch_size": args.batch_size, "sampling": ev.sampling, "dist": ev.dist}
    fake, sec_per_image = generate_sharded(ev.family, ev.ps["captions"], eval_seeds(args.seed, ev.n), **shard)
    gen = _Generated(fake, sec_per_image)
    if "diversity" in ev.names:
        gen.pool, gen.div_groups = _diversity_groups(ev)
        m = args.diversity_seeds
        caps = [gen.pool["captions"][g[0]] for g in gen.div_groups for _ in range(m)]
        gen.div_fake, _ = generate_sharded(
            ev.family, caps, eval_seeds(args.seed + 7_000_003, len(caps)), **shard
        )
    return gen


def _diversity_groups(ev: _Eval) -> tuple[dict, list]:
    """(prompt pool, K groups of pool indices sharing one prompt); the same grouping is used on the
    real images. The toy pool is widened to find repeated prompts; COCO has none: one index each."""
    from ldm_vs_gan.metrics.diversity import pick_prompt_groups

    args, n = ev.args, ev.n
    pool_n = max(n, min(int(ev.cfg.data.get("n_heldout", n)), 2000)) if ev.data == "toy" else n
    pool = (
        ev.ps if pool_n == n else prompt_sets.prompt_set(ev.cfg, ev.data, pool_n, args.seed, args.coco_root)
    )
    groups = pick_prompt_groups(
        pool["captions"], pool["attributes"], args.diversity_prompts, args.diversity_seeds
    )
    if not groups:  # no repeated prompts (COCO): generated diversity only
        groups = [[i] for i in range(min(args.diversity_prompts, n))]
    return pool, groups


def _feature_metrics(ev: _Eval, gen: _Generated, results: dict) -> tuple:
    """FID, KID and diversity in the chosen feature space, against cached real statistics; returns
    (extractor, real statistics), both None when none of them was asked for."""
    from ldm_vs_gan.metrics import fid as F
    from ldm_vs_gan.metrics.features import extract

    if not {"fid", "kid", "prdc", "diversity"} & set(ev.names):
        return None, None
    ext = _extractor(ev.feature, ev.cfg, ev.ps, ev.args, ev.clip)
    real = _real_stats(ev, ext)
    fake_f = extract(ext, gen.fake.to(_device_of(ext)))
    if "fid" in ev.names:
        results["fid"] = F.fid_from_stats(real.sum, real.cov_sum, real.n, fake_f)
    if "prdc" in ev.names:  # on the very features of FID: no second pass
        from ldm_vs_gan.metrics.prdc import prdc

        results.update(prdc(real.features, fake_f.numpy(), k=ev.args.prdc_k))
    if "kid" in ev.names:
        results["kid"], results["kid_std"], results["kid_subset_size"] = F.kid_from_features(
            real.features, fake_f, seed=ev.args.seed
        )
    if "diversity" in ev.names:
        results.update(_diversity(ev, gen, ext))
    return ext, real


def _diversity(ev: _Eval, gen: _Generated, ext) -> dict[str, float]:
    """Mean feature spread over the M seeds of each prompt; against real images of the same prompts
    when each group holds several."""
    from ldm_vs_gan.metrics.diversity import group_diversity
    from ldm_vs_gan.metrics.features import extract

    m, groups = ev.args.diversity_seeds, gen.div_groups
    df = extract(ext, gen.div_fake).numpy()
    out = {"diversity": group_diversity([df[i * m : (i + 1) * m] for i in range(len(groups))])}
    if len(groups[0]) >= 2:
        real_imgs = torch.cat(list(gen.pool["real"]()))
        out["diversity_real"] = group_diversity([extract(ext, real_imgs[g]).numpy() for g in groups])
        out["diversity_ratio"] = out["diversity"] / out["diversity_real"]
    out["diversity_prompts"], out["diversity_seeds"] = float(len(groups)), float(m)
    return out


def _inception_score(ev: _Eval, fake: torch.Tensor, results: dict, skipped: dict) -> None:
    from ldm_vs_gan.metrics import fid as F
    from ldm_vs_gan.metrics.features import InceptionFeatures, extract

    if "is" not in ev.names:
        return
    try:
        logits = extract(InceptionFeatures(ev.args.inception_weights, output="logits_unbiased"), fake)
        results["is"], results["is_std"] = F.inception_score_from_logits(logits, seed=ev.args.seed)
    except MissingWeightsError as e:
        if ev.args.metric != "all":
            raise
        skipped["is"] = str(e)  # `all` on the toy world: IS is Inception-only; said, not hidden


def _clip_score(ev: _Eval, fake: torch.Tensor, results: dict) -> None:
    from ldm_vs_gan.metrics.clip_score import clip_score

    if "clip_score" in ev.names:
        clip, _ = ev.clip()
        results["clip_score"] = clip_score(clip, fake.to(ev.device), ev.ps["captions"])


def _cmmd(ev: _Eval, fake: torch.Tensor, results: dict) -> None:
    """CMMD (Jayasumana et al. 2024) on the scoring CLIP's image embeddings (``--clip-score-clip``,
    else the run's CLIP); the real embeddings are cached like any real statistics."""
    from ldm_vs_gan.metrics.cmmd import cmmd
    from ldm_vs_gan.metrics.features import ClipFeatures, extract

    if "cmmd" not in ev.names:
        return
    clip, label = ev.clip()
    ext = ClipFeatures(clip, label)
    real = _real_stats(ev, ext)
    results["cmmd"] = cmmd(real.features, extract(ext, fake.to(_device_of(ext))).numpy())


def _device_of(ext) -> torch.device:
    """Where an extractor computes (its parameters'; the CPU for one without, e.g. the toy judge's)."""
    return next(ext.parameters(), torch.empty(0)).device


def _real_stats(ev: _Eval, ext):
    """The prompt set's real-image statistics in ``ext``'s space, cached under what made them."""
    from ldm_vs_gan.metrics.features import extract
    from ldm_vs_gan.metrics.stats_cache import real_stats, stats_key

    ps, dev = ev.ps, _device_of(ext)
    key = stats_key(
        data=ps["prov"]["source"],
        split=ps["prov"]["split"],
        n=ev.n,
        resolution=ps["resolution"],
        extractor=ext,
        selection=ps["prov"]["selection"],
    )
    return real_stats(key, lambda: torch.cat([extract(ext, c.to(dev)) for c in ps["real"]()]))


def _fidelity(ev: _Eval, fake: torch.Tensor, results: dict) -> None:
    from ldm_vs_gan.toy.judge import load_judge

    if "fidelity" not in ev.names:
        return
    judge = load_judge(ev.ps["data_cfg"])
    for k, v in judge.fidelity(fake, ev.ps["attributes"]).items():
        results["fidelity" if k == "overall" else f"fidelity/{k}"] = float(v)
    results.setdefault("judge_heldout_accuracy", float(judge.heldout_accuracy.get("overall", float("nan"))))


def _provenance(ev: _Eval, gen: _Generated, ext, real, skipped: dict) -> dict:
    """Everything that made the numbers: code, data, weights, sampling, seed, extractor, judge."""
    from ldm_vs_gan.metrics import provenance

    args, names = ev.args, ev.names
    prov = provenance.build(
        num_samples=ev.n,
        extractor=ext.provenance() if ext is not None else None,
        data=ev.ps["prov"],
        checkpoint=_checkpoint_provenance(ev),
        sampling=ev.sampling,
        sampling_overrides={
            k: v
            for k, v in (
                ("sampler", args.sampler),
                ("steps", args.steps),
                ("guidance", args.guidance),
                ("truncation", args.truncation),
            )
            if v is not None
        },
        seed=args.seed,
        metrics=names,
        world_size=ev.dist.world_size,
        seconds_per_image=gen.sec_per_image,
        device=ev.device,
        skipped=skipped,
        clip_score_clip=(
            None
            if not {"clip_score", "cmmd"} & set(names)
            else {"config": args.clip_score_clip or "run", "same_clip_as_training": ev.clip.same}
        ),
        real_stats_cache={"path": str(real.path), "hit": real.hit} if ext is not None else None,
    )
    if ev.data == "toy" and ("fidelity" in names or ev.feature == "toy"):
        from ldm_vs_gan.toy.judge import load_judge

        j = load_judge(ev.ps["data_cfg"])
        prov["judge"] = {"name": j.name, "sha256": j.sha256, "heldout_accuracy": dict(j.heldout_accuracy)}
    return prov


def _checkpoint_provenance(ev: _Eval) -> dict:
    info = ev.info
    return {
        "run_dir": str(Path(ev.args.run).resolve()),
        "images_seen": int(info["images_seen"]),
        "checkpoint": info.get("checkpoint"),
        "weights": info.get("weights"),
        "weights_sha256": info.get("weights_sha256"),
        "family": ev.cfg.model.get("name"),
    }


def _write(ev: _Eval, out: dict) -> Path:
    """``--out``, else ``RUN/eval/eval_<tag>.json``, written atomically; returns the path."""
    args = ev.args
    tag = _tag(ev.names, ev.feature, ev.n, ev.sampling, args.seed)
    path = Path(args.out) if args.out else Path(args.run) / "eval" / f"eval_{tag}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(out, indent=2, default=str) + "\n")
    os.replace(tmp, path)
    return path


def _tag(names, feature, n, sampling, seed) -> str:
    samp = "-".join(f"{k}{v}" for k, v in sorted(sampling.items()) if v is not None) or "default"
    return f"{'+'.join(names)}_{feature}_n{n}_{samp}_s{seed}".replace("/", "_").replace(" ", "")


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        evaluate(args)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    # a process group made for this evaluation is left to the process's exit (see distributed.setup)
    return 0


if __name__ == "__main__":
    sys.exit(main())
