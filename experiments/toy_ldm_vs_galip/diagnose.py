"""Why a run draws the right colour and not the right shape: readings of its final weights.

    python experiments/toy_ldm_vs_galip/diagnose.py --run RUN_DIR [--n 500] [--out FILE]

On the single-object prompts among the first N held-out captions, with the final evaluation's
images (same prompts, seeds and batches: the judge's shape reading here equals the evaluation's
``fidelity/single/shape``), it reads the generated images twice, with the toy judge (trained on
the world's labels: the ground truth) and with the run's frozen CLIP (zero-shot over the 16
captions "a {colour} {shape}"), and reads the real held-out images of the same prompts the same
way. A generator trained against a CLIP-based critic (GALIP's CLIP loss and CLIP-feature
discriminator) that pleases the CLIP without drawing the shape shows as CLIP saying "right shape"
far more often than the judge does. For a family with a discriminator that scores (image, caption)
pairs it also reports how often the discriminator scores an image higher with its own caption than
with the shape (colour, size) swapped, on real images and on the generator's own images: at 0.5 the
discriminator cannot tell, so it gives the generator no gradient towards the asked attribute.
Writes JSON (default RUN_DIR/eval/diagnosis.json).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch


@torch.no_grad()
def diagnose(run_dir: str | Path, n: int = 500, batch: int = 64) -> dict:
    from ldm_vs_gan.data import Batch, heldout_batch
    from ldm_vs_gan.metrics.generation import eval_seeds, generate_sharded
    from ldm_vs_gan.metrics.quick import to_uint8
    from ldm_vs_gan.toy.judge import load_judge
    from ldm_vs_gan.toy.metrics import clip_reading, swapped_caption_rejection
    from ldm_vs_gan.toy.world import COLORS, SHAPES
    from ldm_vs_gan.training import load_run

    fam, cfg, info = load_run(run_dir)
    held = heldout_batch(cfg.data, n)
    single = [i for i, a in enumerate(held.attributes) if a and len(a.get("objects", [])) == 1]
    if not single:
        raise SystemExit(f"diagnose: no single-object prompt among the first {n} held-out captions")
    caps = [held.captions[i] for i in single]
    attrs = [held.attributes[i] for i in single]
    # the final evaluation's images: its prompts, seeds and batches (eval --seed 0, batch 64)
    fake, _ = generate_sharded(fam, held.captions, eval_seeds(0, len(held)), batch_size=batch)
    fake = fake[single]
    real = to_uint8(held.images[single])
    shape = torch.tensor([SHAPES.index(a["objects"][0]["shape"]) for a in attrs])
    color = torch.tensor([COLORS.index(a["objects"][0]["color"]) for a in attrs])
    judge = load_judge(cfg.data)
    out: dict = {"run": str(run_dir), "images_seen": int(info["images_seen"]), "n_prompts": len(single)}
    for name, imgs in (("fake", fake), ("real", real)):
        pred = judge.predict(imgs)
        c_col, c_shape = clip_reading(fam.clip, imgs)
        out[f"judge_shape_right_{name}"] = _share(pred["shape0"] == shape)
        out[f"judge_color_right_{name}"] = _share(pred["color0"] == color)
        out[f"clip_shape_right_{name}"] = _share(c_shape == shape)
        out[f"clip_color_right_{name}"] = _share(c_col == color)
        if name == "fake":
            drawn = torch.bincount(pred["shape0"], minlength=len(SHAPES)).float() / len(imgs)
            out["fake_shapes_judged"] = dict(zip(SHAPES, [round(float(v), 4) for v in drawn]))
            conf = torch.zeros(len(SHAPES), len(SHAPES), dtype=torch.long)
            conf.index_put_(
                (shape, pred["shape0"]), torch.ones(len(shape), dtype=torch.long), accumulate=True
            )
            out["shape_confusion_asked_by_judged"] = conf.tolist()
    for name, imgs in (("real", real), ("fake", fake)):
        b = Batch(images=imgs.float() / 127.5 - 1.0, captions=caps, attributes=attrs)
        d = swapped_caption_rejection(fam, b, list(range(len(caps))))
        out.update({f"{k}_{name}": v for k, v in d.items()})
    return out


def _share(mask: torch.Tensor) -> float:
    return round(float(mask.float().mean()), 4) if len(mask) else float("nan")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--run", required=True, help="run directory")
    p.add_argument(
        "--n", type=int, default=500, help="first N held-out prompts (single-object ones are read)"
    )
    p.add_argument("--out", default=None, help="JSON path (default RUN_DIR/eval/diagnosis.json)")
    a = p.parse_args(argv)
    out = Path(a.out or Path(a.run) / "eval" / "diagnosis.json")
    d = diagnose(a.run, a.n)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps(d, indent=2) + "\n")
    tmp.replace(out)  # whole or absent: the study skips a run whose diagnosis exists
    print(json.dumps({k: v for k, v in d.items() if not isinstance(v, (list, dict))}))
    return 0


if __name__ == "__main__":
    sys.exit(main())


READINGS = [  # (key in diagnosis.json, label)
    ("judge_shape_right_fake", "generated: judge reads the asked shape (chance 0.25)"),
    ("clip_shape_right_fake", "generated: frozen CLIP reads the asked shape"),
    ("judge_color_right_fake", "generated: judge reads the asked colour"),
    ("clip_color_right_fake", "generated: frozen CLIP reads the asked colour"),
    ("clip_shape_right_real", "real: frozen CLIP reads the shape"),
    ("clip_color_right_real", "real: frozen CLIP reads the colour"),
    ("judge_shape_right_real", "real: judge reads the shape"),
    ("top_shape_share", "generated: share of the most-drawn shape (judge; 0.25 = even)"),
    ("d_rejects_swapped_shape_real", "Mate-D prefers own caption to shape-swapped, real images"),
    ("d_rejects_swapped_color_real", "Mate-D prefers own caption to colour-swapped, real images"),
    ("d_rejects_swapped_shape_fake", "Mate-D prefers the asked caption to shape-swapped, generated"),
    ("d_rejects_swapped_color_fake", "Mate-D prefers the asked caption to colour-swapped, generated"),
]


def table(runs) -> str:
    """Markdown: readings x groups (mean ± std over the group's seeds), from each run's
    eval/diagnosis.json; '' when no run has one."""
    import statistics

    groups: dict[str, list[dict]] = {}
    for r in runs:
        f = r.path / "eval" / "diagnosis.json"
        if f.is_file():
            d = json.loads(f.read_text())
            d["top_shape_share"] = max(d.get("fake_shapes_judged", {}).values(), default=float("nan"))
            groups.setdefault(r.label, []).append(d)
    if not groups:
        return ""
    lines = ["| reading | " + " | ".join(groups) + " |", "|---|" + "---|" * len(groups)]
    for key, label in READINGS:
        cells = []
        for ds in groups.values():
            v = [float(d[key]) for d in ds if isinstance(d.get(key), (int, float))]
            if not v:
                cells.append("-")
            elif len(v) == 1:
                cells.append(f"{v[0]:.2f}")
            else:
                cells.append(f"{statistics.fmean(v):.2f} ± {statistics.stdev(v):.2f} (n={len(v)})")
        if any(c != "-" for c in cells):
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
