"""Figures of the comparison report (matplotlib, Agg backend; small PNGs that can be committed)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from ldm_vs_gan.report.collect import LOWER_BETTER, RunInfo, curve, flops_per_image  # noqa: E402

COLORS = [
    f"tab:{c}" for c in ("blue", "red", "green", "purple", "orange", "brown", "pink", "gray", "olive", "cyan")
]


def family_colors(runs: list[RunInfo]) -> dict[str, str]:
    fams = sorted({r.family for r in runs})
    return {f: COLORS[i % len(COLORS)] for i, f in enumerate(fams)}


def sample_grid(runs: list[RunInfo], path: Path) -> Path | None:
    """Rows: runs; columns: the same prompts and seeds for every run."""
    runs = [r for r in runs if r.grid is not None]
    if not runs:
        return None
    ncol = len(runs[0].grid)
    fig, axes = plt.subplots(
        len(runs), ncol, figsize=(1.3 * ncol + 1.2, 1.45 * len(runs) + 0.9), squeeze=False
    )
    for i, r in enumerate(runs):
        for j in range(ncol):
            ax = axes[i][j]
            ax.imshow(r.grid[j].permute(1, 2, 0).numpy(), interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(_wrap(r.grid_captions[j]), fontsize=6)
            if j == 0:
                ax.set_ylabel(r.name, fontsize=7)
    fig.suptitle("same prompts, same seeds", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _wrap(s: str, width: int = 18) -> str:
    words, lines, cur = s.split(), [], ""
    for w in words:
        if len(cur) + len(w) + 1 > width and cur:
            lines.append(cur)
            cur = w
        else:
            cur = f"{cur} {w}".strip()
    lines.append(cur)
    return "\n".join(lines[:3])


def ylabel(metric: str) -> str:
    """``fid_toy (lower better)``; by name, not prefix: "fidelity" starts with "fid" too."""
    lower = metric in LOWER_BETTER or metric.startswith("val_loss/")
    return metric + (" (lower better)" if lower else " (higher better)")


# the quick evaluation's curves: the toy world's (judge) and any other data's (the run's CLIP)
CURVE_KEYS = ("fid_toy", "fidelity", "fid_clip", "clip_score")
# training-health readings of the quick evaluation (each family logs the ones that apply to it)
HEALTH_KEYS = (
    "recall",
    "coverage",
    "clip_judge_agreement",
    "d_rejects_swapped_shape",
    "d_rejects_swapped_color",
    "d_rejects_swapped_size",
    "val_loss/t0000-0249",
    "val_loss/t0750-0999",
)


# prompt fidelity by task over training (the judge's per-attribute readings of the quick evaluation)
TASK_KEYS = (
    "fidelity/single/overall",
    "fidelity/single/shape",
    "fidelity/single/color",
    "fidelity/single/size",
    "fidelity/single/count",
    "fidelity/two/relation",
)


def training_curves(runs: list[RunInfo], path: Path, keys=CURVE_KEYS) -> Path | None:
    """Quick-eval scalars against images seen, training seconds and, when the engine counted
    them, training compute (FLOPs per image x images seen): equal images and equal compute."""
    cols = family_colors(runs)
    have = [k for k in keys if any(curve(r.log, k) for r in runs)]
    if not have:
        return None
    flops = {r.name: flops_per_image(r.log) for r in runs}
    ncol = 3 if any(flops.values()) else 2
    fig, axes = plt.subplots(len(have), ncol, figsize=(4.5 * ncol, 3.0 * len(have)), squeeze=False)
    for i, k in enumerate(have):
        for r in runs:
            pts = curve(r.log, k)
            if not pts:
                continue
            xs = [[p[0] for p in pts], [p[1] for p in pts]]
            if ncol == 3:
                xs.append([p[0] * (flops[r.name] or float("nan")) / 1e12 for p in pts])
            style = dict(ms=3, color=cols[r.family], alpha=0.8)
            for j, x in enumerate(xs):
                lab = f"{r.family} (seed {r.seed})" if j == 0 else None
                axes[i][j].plot(x, [p[2] for p in pts], "-o", label=lab, **style)
        axes[i][0].set_xlabel("images seen")
        axes[i][1].set_xlabel("training time (s, from logged img/s)")
        if ncol == 3:
            axes[i][2].set_xlabel("training compute (TFLOP, engine's counter)")
        for ax in axes[i]:
            ax.set_ylabel(ylabel(k))
            ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def nfe_plot(
    points: dict[str, list[tuple[float, float, float, str]]], metric: str, path: Path
) -> Path | None:
    """``points[family] = [(seconds per image, value, nfe, label)]``: LDM at several step counts,
    the GAN's single step, on the same latency axis (log scale)."""
    if not points:
        return None
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    for i, (fam, pts) in enumerate(sorted(points.items())):
        pts = sorted(pts)
        ax.plot([p[0] for p in pts], [p[1] for p in pts], "-o", color=COLORS[i % len(COLORS)], label=fam)
        for lat, val, _nfe, lab in pts:
            ax.annotate(lab, (lat, val), fontsize=7, xytext=(3, 3), textcoords="offset points")
    ax.set_xscale("log")
    ax.set_xlabel("sampling latency (s / image, this machine)")
    ax.set_ylabel(metric)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _knob_value(point) -> float:
    """``guidance=3.0`` -> 3.0; no knob (``no truncation``: the untruncated GAN) sorts last."""
    try:
        return float(point[2].split("=", 1)[1])
    except (IndexError, ValueError):
        return float("inf")


def tradeoff_plot(points: dict[str, list], xlabel: str, path: Path, ylabel: str = "FID (lower better)"):
    """FID against another metric while the sampling knob sweeps (guidance for the LDM, truncation
    for the GAN), one line per family; the default operating point is a filled star."""
    if not points or all(len(p) < 2 for p in points.values()):
        return None
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    for i, (fam, pts) in enumerate(sorted(points.items())):
        pts = sorted(pts, key=_knob_value)  # joined in knob order: the line is the sweep
        col = COLORS[i % len(COLORS)]
        ax.plot([p[0] for p in pts], [p[1] for p in pts], "-o", ms=4, color=col, label=fam)
        for xv, yv, knob, default in pts:
            ax.annotate(knob, (xv, yv), fontsize=7, xytext=(3, 3), textcoords="offset points")
            if default:
                ax.plot([xv], [yv], "*", ms=14, color=col, markeredgecolor="black")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, title="star: default", title_fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
