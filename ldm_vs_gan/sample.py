"""``python -m ldm_vs_gan.sample``: images from a trained run, for any generative family.

    python -m ldm_vs_gan.sample --run runs/ldm-toy --prompt "a red circle" --n 8
    python -m ldm_vs_gan.sample --run runs/ldm-toy --prompt "a blue square" --seed 12345678901 \\
        --sampler dpmpp_2m_karras --steps 25 --guidance 4 --negative-prompt "red"

Images ``N`` use seeds ``S .. S+N-1`` (int64); image i depends only on (prompt, its seed, the
sampling settings), so one image can be regenerated alone by its seed. Each PNG carries in its
text metadata the prompt, negative prompt, seed, sampler, steps, guidance, the checkpoint and the
weights' hash; ``grid.png`` shows all. Sampling flags the family does not have (a GAN has no
sampler, steps, guidance or negative prompt) are rejected with one line, exit status 2, as is
every bad flag value (a missing run, ``--device cuda`` without CUDA, damaged weights).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from pathlib import Path

from ldm_vs_gan.errors import UserError, bad_value

#: flag -> the family's sampling option it sets
FLAGS = {
    "sampler": "--sampler",
    "steps": "--steps",
    "guidance": "--guidance",
    "negative_prompt": "--negative-prompt",
}


class ArgParser(argparse.ArgumentParser):
    """Usage errors as one line, ``error: ...``, exit status 2, like every other error of the CLIs."""

    def error(self, message: str):
        self.exit(2, f"error: {message} (see {self.prog} --help)\n")


def resolve_device(value: str | None, flag: str = "--device") -> str:
    """``cpu``, ``cuda`` (this rank's GPU) or ``cuda:N``, checked against this machine; None: this
    rank's GPU when there is one, else ``cpu``."""
    import torch

    rank_gpu = f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}"
    if value is None:
        return rank_gpu if torch.cuda.is_available() else "cpu"
    try:
        dev = torch.device(value)
    except (RuntimeError, ValueError):
        dev = None
    if dev is None or dev.type not in ("cpu", "cuda"):
        raise bad_value(flag, value, "cpu, cuda, cuda:N")
    if dev.type == "cpu":
        return "cpu"
    n = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if n == 0:
        raise UserError(f"{flag}={value!r}: no CUDA device is available on this machine; use {flag} cpu")
    if (dev.index or 0) >= n:
        raise UserError(f"{flag}={value!r}: this machine has {n} CUDA device(s), cuda:0 to cuda:{n - 1}")
    return rank_gpu if dev.index is None else str(dev)


def at_least(flag: str, value, low: int) -> None:
    """One-line error for an integer flag below ``low`` (None: not given, nothing to check)."""
    if value is not None and value < low:
        raise UserError(f"{flag}={value} is not allowed; choose an integer >= {low}")


def check_run(path: str, flag: str = "--run") -> Path:
    if not Path(path).is_dir():
        raise UserError(f"{flag}={path!r} is not a folder; give a run directory (config.yaml + weights/)")
    return Path(path)


def parse_args(argv=None) -> argparse.Namespace:
    ap = ArgParser(prog="python -m ldm_vs_gan.sample", description=__doc__.split("\n\n")[0])
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


def _check_args(args) -> str:
    """Every flag checked before any work; returns the device."""
    for flag, low in (("--n", 1), ("--batch-size", 1), ("--steps", 1), ("--nrow", 1)):
        at_least(flag, getattr(args, flag[2:].replace("-", "_")), low)
    if not (-(2**63) <= args.seed and args.seed + args.n - 1 < 2**63):
        raise UserError(f"--seed={args.seed} with --n={args.n} leaves the int64 range")
    check_run(args.run)
    return resolve_device(args.device)


def _out_dir(args) -> Path:
    out = Path(args.out) if args.out else Path(args.run) / "generated" / _slug(args.prompt[0])
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as ex:
        raise UserError(f"--out={str(out)!r} cannot be used as the image folder ({ex.strerror})") from None
    return out


def _run(args) -> int:
    device = _check_args(args)
    out = _out_dir(args)  # before the model loads: a bad folder fails in a second
    from ldm_vs_gan import plugins
    from ldm_vs_gan.training import load_run
    from ldm_vs_gan.training.rundir import run_config

    plugins.prepare(run_config(args.run), "sample")  # first-use models the run's family builds
    family, cfg, info = load_run(args.run, weights=args.weights, device=device)
    name = str(cfg.model.get("name", type(family).__name__))
    defaults = family.sampling_defaults()
    given = sampling_options(args, defaults, name)
    effective = {**defaults, **given}

    seeds = list(range(args.seed, args.seed + args.n))
    jobs = [(p, s) for p in args.prompt for s in seeds]
    images = _generate(family, jobs, args.batch_size, given)
    common = _png_metadata(args, name, info, effective)
    _save_images(out, jobs, images, common)
    _save_grid(
        out / "grid.png",
        images,
        args.nrow or args.n,
        {"prompts": json.dumps(args.prompt), "seeds": json.dumps(seeds), **common},
    )
    settings = ", ".join(f"{k}={v}" for k, v in effective.items())
    print(
        f"wrote {len(jobs)} images + grid.png to {out} ({name}, {settings}, "
        f"checkpoint {info.get('checkpoint')} at {info.get('images_seen')} images)"
    )
    return 0


def _generate(family, jobs: list[tuple[str, int]], batch_size: int, given: dict):
    """uint8 images of the (prompt, seed) jobs, in order, ``batch_size`` per forward pass."""
    import torch

    images = []
    for i in range(0, len(jobs), batch_size):
        chunk = jobs[i : i + batch_size]
        seeds = torch.tensor([s for _, s in chunk], dtype=torch.int64)
        images.append(family.generate([p for p, _ in chunk], seeds, **given))
    return torch.cat(images)


def _png_metadata(args, name: str, info: dict, effective: dict) -> dict[str, str]:
    """Text fields every PNG carries: the run, its weights and the sampling settings used."""
    return {
        "family": name,
        "run": str(Path(args.run).resolve()),
        "checkpoint": str(info.get("checkpoint")),
        "images_seen": str(info.get("images_seen")),
        "weights": str(info.get("weights", args.weights)),
        "weights_sha256": json.dumps(info.get("weights_sha256")),
        **{k: json.dumps(v) if not isinstance(v, str) else v for k, v in effective.items()},
    }


def _png(path: Path, chw, meta: dict[str, str]) -> None:
    from PIL import Image
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    for k, v in meta.items():
        info.add_text(k, v)
    Image.fromarray(chw.permute(1, 2, 0).cpu().numpy()).save(path, pnginfo=info)


def _save_images(out: Path, jobs, images, common: dict[str, str]) -> None:
    for (prompt, seed), img in zip(jobs, images):
        _png(
            out / f"{_slug(prompt, 32)}-seed{seed}.png", img, {"prompt": prompt, "seed": str(seed), **common}
        )


def _save_grid(path: Path, images, nrow: int, meta: dict[str, str]) -> None:
    from torchvision.utils import make_grid

    _png(path, make_grid(images, nrow=nrow, padding=2, pad_value=255), meta)


if __name__ == "__main__":
    sys.exit(main())
