"""Compare runs: ``python -m ldm_vs_gan.compare RUN_A RUN_B [...] --out DIR``.

Writes ``DIR/report.md`` (+ PNG figures) and a self-contained ``DIR/report.html``: metrics tables
(only comparable numbers side by side: same N, same extractor and weights, same data and split,
same sampling overrides; several runs of one family become mean ± std over seeds), sample grids of
the same prompts and seeds, quick-eval curves against images seen and training time, FID and
fidelity against sampling latency (the LDM's step counts vs the GAN's single step), parameter
counts, training img/s and sampling latency. It computes no metric itself: numbers come from
``eval/eval_*.json`` (``python -m ldm_vs_gan.eval``) and ``metrics.jsonl``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ldm_vs_gan.errors import UserError


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m ldm_vs_gan.compare", description=__doc__.split("\n\n")[0])
    p.add_argument(
        "runs",
        nargs="+",
        help="run directories; LABEL=RUN_DIR groups runs under LABEL instead of their model family "
        "(e.g. one family at two budgets, or a variant of a family)",
    )
    p.add_argument("--out", required=True, help="output folder of the report")
    p.add_argument(
        "--panel", type=int, default=8, help="prompts in the sample grid (first held-out captions)"
    )
    p.add_argument("--panel-seed", type=int, default=0, help="first seed of the panel")
    p.add_argument(
        "--grid-runs",
        choices=("first", "all"),
        default="first",
        help="sample grid rows: the first run of each family, or every run",
    )
    return p.parse_args(argv)


def nfe_points(runs, metric: str) -> dict[str, list]:
    """Latency/metric points at one comparable (N, extractor, data) setting: the one with the most
    distinct sampling settings (the NFE sweep). LDM points are its step counts; the GAN has one."""
    from collections import Counter

    from ldm_vs_gan.report.collect import comparable_key

    evs = [(r, ev) for r in runs for ev in r.evals if metric in ev["metrics"] and _steps_only(ev)]
    if not evs:
        return {}
    # the setting (N, extractor, data) with the most distinct sampling settings: the NFE sweep
    settings: dict[tuple, set] = {}
    for r, ev in evs:
        steps = (ev["provenance"].get("sampling") or {}).get("steps")
        settings.setdefault(comparable_key(ev)[:5], set()).add((r.family, steps))
    count = Counter(comparable_key(ev)[:5] for _, ev in evs)
    common = max(settings, key=lambda k: (len(settings[k]), count[k]))
    acc: dict[tuple[str, str], list] = {}
    for r, ev in evs:
        if comparable_key(ev)[:5] != common:
            continue
        p = ev["provenance"]
        steps = (p.get("sampling") or {}).get("steps")
        label = f"{steps} steps" if steps is not None else "1 step"
        acc.setdefault((r.family, label), []).append(
            (float(p.get("seconds_per_image", float("nan"))), float(ev["metrics"][metric]), steps or 1)
        )
    out: dict[str, list] = {}
    for (fam, label), pts in acc.items():  # mean over seeds at each setting
        n = len(pts)
        out.setdefault(fam, []).append(
            (sum(p[0] for p in pts) / n, sum(p[1] for p in pts) / n, pts[0][2], label)
        )
    return out


def _steps_only(ev: dict) -> bool:
    """Evaluations at the family's default sampling or with only the step count changed (a
    guidance or truncation sweep at the same N belongs to the trade-off, not to the NFE curve)."""
    return set(ev["provenance"].get("sampling_overrides") or {}) <= {"steps"}


def build_report(args) -> Path:
    from ldm_vs_gan.report import render
    from ldm_vs_gan.report.collect import panel

    labels, paths = zip(*map(_label_and_path, args.runs))
    runs_dirs = _run_dirs(list(paths))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    captions = panel(runs_dirs[0], args.panel)
    seeds = list(range(args.panel_seed, args.panel_seed + len(captions)))
    runs = _collect_runs(runs_dirs, captions, seeds, all_grids=args.grid_runs == "all", labels=list(labels))
    md, html = render.write(out, runs, _figures(runs, out), _notes(runs))
    _write_summary(out / "summary.json", runs)
    print(f"wrote {md} and {html}")
    return md


def _label_and_path(arg: str) -> tuple[str | None, str]:
    """``LABEL=RUN_DIR`` -> (LABEL, RUN_DIR); a run directory (even one with '=' in its path) ->
    (None, itself)."""
    if "=" in arg and not Path(arg).is_dir():
        label, path = arg.split("=", 1)
        return label, path
    return None, arg


def _run_dirs(paths: list[str]) -> list[Path]:
    runs_dirs = [Path(r) for r in paths]
    for r in runs_dirs:
        if not (r / "config.yaml").is_file():
            raise UserError(f"{str(r)!r} is not a run directory (no config.yaml)")
    return runs_dirs


def _collect_runs(runs_dirs: list[Path], captions, seeds, *, all_grids: bool, labels=None) -> list:
    """Every run read; the grid kept for the first run of each group (every run with all_grids).
    A run's group is its label when it has one, else its model family."""
    from ldm_vs_gan.report.collect import collect

    runs, seen = [], set()
    for r, label in zip(runs_dirs, labels or [None] * len(runs_dirs)):
        runs.append(collect(r, panel_captions=captions, panel_seeds=seeds, with_grid=True))
        runs[-1].family = label or runs[-1].family
        grid = all_grids or runs[-1].family not in seen
        seen.add(runs[-1].family)
        if not grid:
            runs[-1].grid = None  # timed for latency, not shown
    return runs


KNOBS = ("guidance", "truncation")  # the quality/diversity knob of each family's sampler


def tradeoff_points(runs, x: str, y: str) -> dict[str, list]:
    """``points[family] = [(x, y, knob label, is_default)]``: the mean over seeds at each knob
    value (LDM guidance, GAN truncation) of evaluations that measured both metrics in one
    comparable (N, extractor, data) setting; the family's default operating point is marked."""
    from ldm_vs_gan.report.collect import comparable_key

    evs = [(r, ev) for r in runs for ev in r.evals if x in ev["metrics"] and y in ev["metrics"]]
    if not evs:
        return {}
    settings = [comparable_key(ev)[:5] for _, ev in evs]
    common = max(set(settings), key=settings.count)
    acc: dict[tuple, list] = {}
    for r, ev in evs:
        ov = ev["provenance"].get("sampling_overrides") or {}
        if comparable_key(ev)[:5] != common or set(ov) - set(KNOBS):
            continue
        samp = ev["provenance"].get("sampling") or {}
        knob = next(
            (f"{k}={samp[k]}" if samp[k] is not None else f"no {k}" for k in KNOBS if k in samp), "default"
        )
        acc.setdefault((r.family, knob, not ov), []).append((ev["metrics"][x], ev["metrics"][y]))
    out: dict[str, list] = {}
    for (fam, knob, default), pts in acc.items():
        n = len(pts)
        out.setdefault(fam, []).append(
            (sum(p[0] for p in pts) / n, sum(p[1] for p in pts) / n, knob, default)
        )
    return out


def _figures(runs, out: Path) -> dict:
    from ldm_vs_gan.report import plots

    return {
        "samples": plots.sample_grid(runs, out / "samples.png"),
        "curves": plots.training_curves(runs, out / "curves.png"),
        "health": plots.training_curves(runs, out / "health.png", keys=plots.HEALTH_KEYS),
        "tasks": plots.training_curves(runs, out / "curves_tasks.png", keys=plots.TASK_KEYS),
        "nfe_fid": plots.nfe_plot(nfe_points(runs, "fid"), "FID (lower better)", out / "nfe_fid.png"),
        "nfe_fidelity": plots.nfe_plot(
            nfe_points(runs, "fidelity"), "fidelity (higher better)", out / "nfe_fidelity.png"
        ),
        "tradeoff_clip_score": plots.tradeoff_plot(
            tradeoff_points(runs, "clip_score", "fid"),
            "CLIP score (higher better)",
            out / "tradeoff_clip.png",
        ),
        "tradeoff_fidelity": plots.tradeoff_plot(
            tradeoff_points(runs, "fidelity", "fid"),
            "fidelity (higher better)",
            out / "tradeoff_fidelity.png",
        ),
    }


def _notes(runs) -> list[str]:
    """Caveats the reader needs next to the numbers: a flattering CLIP score, the toy judge used."""
    notes = []
    for r in runs:
        for ev in r.evals:
            cs = ev["provenance"].get("clip_score_clip")
            if cs and cs.get("same_clip_as_training"):
                notes.append(
                    f"`{r.name}`: CLIP score measured with the CLIP the run trained with (GALIP's "
                    f"generator maximises that similarity: it flatters the GAN; use --clip-score-clip)."
                )
                break
        judge = next((ev["provenance"].get("judge") for ev in r.evals if ev["provenance"].get("judge")), None)
        if judge:
            notes.append(
                f"`{r.name}`: toy judge {judge['name']} (sha256 {judge['sha256'][:12]}), held-out "
                f"accuracy {json.dumps(judge.get('heldout_accuracy'))}"
            )
    notes.append("FID at small N is biased upward: compare only rows with the same N (each table is one N).")
    return notes


def _write_summary(path: Path, runs) -> None:
    summary = {
        r.name: {
            "family": r.family,
            "model": r.model,
            "seed": r.seed,
            "images_seen": r.images_seen,
            "params": r.params,
            "img_per_s": r.img_per_s,
            "latency_s": r.latency_s,
            "evals": [{"file": e["file"], "metrics": e["metrics"]} for e in r.evals],
        }
        for r in runs
    }
    path.write_text(json.dumps(summary, indent=2, default=str) + "\n")


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        build_report(args)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
