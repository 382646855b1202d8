"""``python -m ldm_vs_gan.sample``: images from a trained run, for any generative family.

    python -m ldm_vs_gan.sample --run runs/ldm-toy --prompt "a red circle" --n 8
    python -m ldm_vs_gan.sample --run runs/ldm-toy --prompt "a blue square" --seed 12345678901 \\
        --sampler dpmpp_2m_karras --steps 25 --guidance 4 --negative-prompt "red"

Images ``N`` use seeds ``S .. S+N-1`` (int64); image i depends only on (prompt, its seed, the
sampling settings), so one image can be regenerated alone by its seed. Each PNG carries in its
text metadata the prompt, negative prompt, seed, sampler, steps, guidance, the checkpoint and the
weights' hash; ``grid.png`` shows all. Sampling flags the family does not have (a GAN has no
sampler, steps, guidance or negative prompt) are rejected with one line, exit status 2.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

from ldm_vs_gan.errors import UserError

#: flag -> the family's sampling option it sets
FLAGS = {
    "sampler": "--sampler",
    "steps": "--steps",
    "guidance": "--guidance",
    "negative_prompt": "--negative-prompt",
}


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m ldm_vs_gan.sample", description=__doc__.split("\n\n")[0])
    ap.add_argument("--run", required=True, help="run directory (config.yaml + weights/)")
    ap.add_argument(
        "--prompt", required=True, action="append", help="text prompt (repeat the flag for several prompts)"
    )
    ap.add_argument(
        "--negative-prompt", default=None, help="replaces the unconditional prompt (diffusion only)"
    )
    ap.add_argument("--seed", type=int, default=0, help="first seed (int64); image k uses seed+k")
    ap.add_argument("--n", type=int, default=4, help="images per prompt")
    ap.add_argument("--sampler", default=None, help="sampler (diffusion only; default: the run's)")
    ap.add_argument("--steps", type=int, default=None, help="denoiser evaluations (diffusion only)")
    ap.add_argument(
        "--guidance", type=float, default=None, help="classifier-free guidance scale (diffusion only)"
    )
    ap.add_argument("--out", default=None, help="output folder (default: RUN/generated/<prompt>)")
    ap.add_argument("--weights", default="ema", choices=["ema", "raw"], help="EMA weights or the live ones")
    ap.add_argument("--batch-size", type=int, default=16, help="images per forward pass")
    ap.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N")
    ap.add_argument("--nrow", type=int, default=None, help="images per grid row (default: n)")
    return ap.parse_args(argv)


def _slug(text: str, n: int = 48) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:n] or "prompt"


def sampling_options(args: argparse.Namespace, defaults: dict, family_name: str) -> dict:
    """The flags given, checked against the family's sampling options (its ``sampling_defaults``)."""
    given = {k: getattr(args, k) for k in FLAGS if getattr(args, k) is not None}
    for k in given:
        if k not in defaults:
            have = ", ".join(sorted(defaults)) or "none"
            raise UserError(
                f"{FLAGS[k]} is not a sampling option of the {family_name} family "
                f"(its sampling options: {have})"
            )
    return given


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        return _run(args)
    except UserError as ex:
        print(f"error: {ex}", file=sys.stderr, flush=True)
        return 2


def _run(args) -> int:
    if args.n < 1:
        raise UserError(f"--n={args.n} is not allowed; choose an integer >= 1")
    if not (-(2**63) <= args.seed and args.seed + args.n - 1 < 2**63):
        raise UserError(f"--seed={args.seed} with --n={args.n} leaves the int64 range")
    import torch
    from PIL import Image
    from PIL.PngImagePlugin import PngInfo
    from torchvision.utils import make_grid

    from ldm_vs_gan.training import load_run

    family, cfg, info = load_run(args.run, weights=args.weights, device=args.device)
    name = str(cfg.model.get("name", type(family).__name__))
    defaults = family.sampling_defaults()
    given = sampling_options(args, defaults, name)
    effective = {**defaults, **given}
    out = Path(args.out) if args.out else Path(args.run) / "generated" / _slug(args.prompt[0])
    out.mkdir(parents=True, exist_ok=True)

    seeds = list(range(args.seed, args.seed + args.n))
    jobs = [(p, s) for p in args.prompt for s in seeds]
    images = []
    for i in range(0, len(jobs), args.batch_size):
        chunk = jobs[i : i + args.batch_size]
        images.append(
            family.generate(
                [p for p, _ in chunk], torch.tensor([s for _, s in chunk], dtype=torch.int64), **given
            )
        )
    images = torch.cat(images)

    common = {
        "family": name,
        "run": str(Path(args.run).resolve()),
        "checkpoint": str(info.get("checkpoint")),
        "images_seen": str(info.get("images_seen")),
        "weights": str(info.get("weights", args.weights)),
        "weights_sha256": json.dumps(info.get("weights_sha256")),
        **{k: json.dumps(v) if not isinstance(v, str) else v for k, v in effective.items()},
    }
    paths = []
    for (prompt, seed), img in zip(jobs, images):
        meta = PngInfo()
        for k, v in {"prompt": prompt, "seed": str(seed), **common}.items():
            meta.add_text(k, v)
        p = out / f"{_slug(prompt, 32)}-seed{seed}.png"
        Image.fromarray(img.permute(1, 2, 0).cpu().numpy()).save(p, pnginfo=meta)
        paths.append(p)
    grid = make_grid(images, nrow=args.nrow or args.n, padding=2, pad_value=255)
    meta = PngInfo()
    for k, v in {"prompts": json.dumps(args.prompt), "seeds": json.dumps(seeds), **common}.items():
        meta.add_text(k, v)
    Image.fromarray(grid.permute(1, 2, 0).cpu().numpy()).save(out / "grid.png", pnginfo=meta)
    settings = ", ".join(f"{k}={v}" for k, v in effective.items())
    print(
        f"wrote {len(paths)} images + grid.png to {out} ({name}, {settings}, "
        f"checkpoint {info.get('checkpoint')} at {info.get('images_seen')} images)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
