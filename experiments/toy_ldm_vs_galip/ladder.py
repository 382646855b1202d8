"""The study's answer at each budget: per-budget tables with intervals, and the ladder figure.

Reads what the study wrote: ``<out>/summary.json`` (compare: every run's evaluations),
each run's ``timings.json`` (run.py: wall and CPU seconds of its training and evaluation) and
``metrics.jsonl`` (the engine's FLOPs per image). Intervals: over seeds, mean ± std and a percentile-bootstrap 95%
interval of the mean; for a single seed, a Wilson 95% interval of a proportion over the evaluated
prompts (sample-set variation only: it says nothing about another training run). Differences:
the permutation test over seeds, or with one seed each a two-proportion z-test over prompts.
"""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path

import diagnose

from ldm_vs_gan.report.collect import flops_per_image, read_log

TABLE_KEYS = [  # (metric key in eval JSON / summary, label, digits)
    ("fid", "FID-toy (judge features) ↓", 1),
    ("kid", "KID-toy ↓", 0),
    ("fidelity", "prompt fidelity, all prompts ↑", 3),
    # The study's headline figure: single-object prompts with shape and colour both right.
    ("fidelity/single/overall", "prompt fidelity, single-object ↑", 3),
    ("fidelity/single/shape", "shape right, single-object ↑", 3),
    ("fidelity/single/color", "colour right, single-object ↑", 3),
    ("fidelity/two/overall", "prompt fidelity, two-object ↑", 3),
    ("precision", "precision (judge features, k=5) ↑", 3),
    ("recall", "recall (judge features, k=5) ↑", 3),
    ("coverage", "coverage (judge features, k=5) ↑", 3),
    ("cmmd", "CMMD (toy CLIP) ↓", 2),
    ("diversity_ratio", "diversity gen/real", 3),
    ("clip_score", "CLIP score (toy CLIP, same as training) ↑", 1),
    ("latency_s", "sampling s/image (defaults, batch 8)", 4),
    ("img_per_s", "training img/s", 1),
    ("train_cpu_s", "training CPU seconds (run.py)", 0),
    ("train_tflop", "training compute, TFLOP (engine's count)", 1),
]
PROPORTION_N = {  # proportions over prompts: which count is their denominator
    "fidelity": ("fidelity/n_single", "fidelity/n_two"),
    **{
        f"fidelity/single/{t}": ("fidelity/n_single",) for t in ("overall", "shape", "color", "size", "count")
    },
    **{f"fidelity/two/{t}": ("fidelity/n_two",) for t in ("overall", "shape", "color", "size", "relation")},
}
LADDER_KEYS = [
    ("fidelity/single/overall", "single-object fidelity ↑"),
    ("fidelity/single/shape", "shape right (chance 0.25) ↑"),
    ("fid", "FID-toy ↓"),
    ("recall", "recall ↑"),
    ("coverage", "coverage ↑"),
]


def wilson(p: float, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval of a proportion p observed over n trials (Wilson 1927)."""
    if n <= 0:
        return math.nan, math.nan
    d = 1 + z * z / n
    c = (p + z * z / (2 * n)) / d
    h = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / d
    return max(0.0, c - h), min(1.0, c + h)


def two_proportion_p(p1: float, n1: int, p2: float, n2: int) -> float:
    """Two-sided p of the pooled two-proportion z-test."""
    pool = (p1 * n1 + p2 * n2) / (n1 + n2)
    se = math.sqrt(pool * (1 - pool) * (1 / n1 + 1 / n2)) if 0 < pool < 1 else 0.0
    if se == 0:
        return 1.0
    return math.erfc(abs(p1 - p2) / se / math.sqrt(2))


def rows_by_run(out: Path, runs) -> dict[str, dict]:
    """Run name -> the final evaluation's metrics plus the compute figures of that run."""
    summ = json.loads((out / "summary.json").read_text())
    rows = {}
    for r in runs:
        info = summ.get(r.path.name)
        if info is None:
            continue
        main = next((e["metrics"] for e in info["evals"] if e["file"] == "eval_study_main.json"), {})
        row = {**main, "latency_s": info["latency_s"], "img_per_s": info["img_per_s"]}
        f = r.path / "timings.json"
        t = json.loads(f.read_text()).get("train") if f.is_file() else None
        if t:
            row["train_cpu_s"] = t["cpu_s"]
        fpi = flops_per_image(read_log(r.path / "metrics.jsonl"))
        if fpi:
            row["train_tflop"] = fpi * info["images_seen"] / 1e12
        rows[r.path.name] = row
    return rows


def _finite(rows: list[dict], key: str) -> list[float]:
    return [float(r[key]) for r in rows if isinstance(r.get(key), (int, float)) and math.isfinite(r[key])]


def cell(key: str, rows: list[dict], digits: int) -> str:
    vals = _finite(rows, key)
    if not vals:
        return "-"
    if len(vals) > 1:
        from ldm_vs_gan.report.render import fmt_ci

        return fmt_ci(vals, digits)
    n = _count(key, rows[0])
    if n:
        lo, hi = wilson(vals[0], n)
        return f"{vals[0]:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]ᵂ (n=1)"
    return f"{vals[0]:.{digits}f} (n=1)"


def _count(key: str, row: dict) -> int:
    return int(sum(row.get(k, 0) for k in PROPORTION_N.get(key, ())))


def difference(key: str, a: list[dict], b: list[dict]) -> str:
    va, vb = _finite(a, key), _finite(b, key)
    if len(va) >= 2 and len(vb) >= 2:
        from ldm_vs_gan.metrics.stats import permutation_test

        return f"p = {permutation_test(va, vb):.2f}"
    if len(va) == 1 and len(vb) == 1 and _count(key, a[0]) and _count(key, b[0]):
        p = two_proportion_p(va[0], _count(key, a[0]), vb[0], _count(key, b[0]))
        return f"p = {p:.1g}ᶻ" if p < 0.01 else f"p = {p:.2f}ᶻ"
    return "-"


def budget_table(budget: int, runs, rows: dict[str, dict], a) -> str:
    """Rows = metrics; columns = the contestants trained to this budget; the last column tests the
    first two contestants' difference."""
    at = [r for r in runs if r.budget == budget and r.path.name in rows]
    names = list(dict.fromkeys(r.contestant for r in at))
    by = {c: [rows[r.path.name] for r in at if r.contestant == c] for c in names}
    seeds = {c: ",".join(str(r.seed) for r in at if r.contestant == c) for c in names}
    head = [
        f"**{budget} images per run** (batch {a.batch_size}, final evaluation N={a.eval_n} held-out prompts)",
        "",
    ]
    cols = [f"{c} (seeds {seeds[c]})" for c in names]
    test = [f"{names[0]} vs {names[1]}"] if len(names) >= 2 else []
    lines = ["| | " + " | ".join(cols + test) + " |", "|---|" + "---|" * (len(cols) + len(test))]
    for key, label, d in TABLE_KEYS:
        cells = [cell(key, by[c], d) for c in names]
        if all(x == "-" for x in cells):
            continue
        diff = [difference(key, by[names[0]], by[names[1]])] if test else []
        lines.append(f"| {label} | " + " | ".join(cells + diff) + " |")
    return "\n".join(head + lines)


def write(out: Path, runs, a) -> str:
    """results.md (one table per budget, the README's results block) and ladder.png."""
    rows = rows_by_run(out, runs)
    budgets = sorted({r.budget for r in runs})
    legend = (
        "Mean ± std [95% bootstrap interval of the mean] over seeds; with one seed, ᵂ marks a Wilson "
        "95% interval over the evaluated prompts. Last column: the permutation test over seeds (3 vs "
        "3 seeds cannot go below p = 0.10), or ᶻ a two-proportion z-test over prompts when each side "
        "has one training run: that one covers only which prompts and seeds were drawn, not another "
        "training run, so it is the weaker evidence despite its smaller p."
    )
    text = "\n\n".join([legend, *[budget_table(b, runs, rows, a) for b in budgets]])
    diag = diagnose.table(runs)
    if diag:
        text += "\n\n**Diagnosis** (diagnose.py, single-object prompts of the final evaluation)\n\n" + diag
    (out / "results.md").write_text(text + "\n")
    if len(budgets) > 1:
        long_seeds = {r.seed for r in runs if r.budget == budgets[-1]}
        ladder_figure(out / "ladder.png", [r for r in runs if r.seed in long_seeds], rows)
    return text


def ladder_figure(path: Path, runs, rows: dict[str, dict]) -> Path:
    """Final-evaluation metrics at each budget, against images seen and against training compute,
    for the seeds trained at every budget: mean over them with the std, or with one seed the
    Wilson interval over prompts, as error bars."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(dict.fromkeys(r.contestant for r in runs))
    fig, axes = plt.subplots(len(LADDER_KEYS), 2, figsize=(10, 2.8 * len(LADDER_KEYS)), squeeze=False)
    for i, (key, label) in enumerate(LADDER_KEYS):
        for c in names:
            pts = _ladder_points(c, key, runs, rows)
            if not pts:
                continue
            for j, x in enumerate(("images", "tflop")):
                axes[i][j].errorbar(
                    [p[x] for p in pts], [p["y"] for p in pts], yerr=[[p["lo"] for p in pts], [p["hi"] for p in pts]],
                    fmt="-o", ms=4, capsize=3, label=c if i == j == 0 else None,
                )  # fmt: skip
        axes[i][0].set_xlabel("images seen (budget)")
        axes[i][1].set_xlabel("training compute, TFLOP (engine's count)")
        for ax in axes[i]:
            ax.set_ylabel(label)
            ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=8)
    seeds = sorted({r.seed for r in runs})
    n = max((_count("fidelity", x) for x in rows.values()), default=0)
    fig.suptitle(
        f"final evaluation (N={n} held-out prompts) at each budget, seed(s) {seeds}; error bars: "
        + ("std over seeds" if len(seeds) > 1 else "Wilson 95% over prompts (fidelity), none (FID, PRDC)"),
        fontsize=9,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _ladder_points(contestant: str, key: str, runs, rows) -> list[dict]:
    pts = []
    for b in sorted({r.budget for r in runs if r.contestant == contestant}):
        rs = [
            rows[r.path.name]
            for r in runs
            if r.contestant == contestant and r.budget == b and r.path.name in rows
        ]
        vals = _finite(rs, key)
        if not vals:
            continue
        m = statistics.fmean(vals)
        if len(vals) > 1:
            lo = hi = statistics.stdev(vals)
        elif _count(key, rs[0]):
            w = wilson(m, _count(key, rs[0]))
            lo, hi = m - w[0], w[1] - m
        else:
            lo = hi = 0.0
        tflop = statistics.fmean(x.get("train_tflop", math.nan) for x in rs)
        pts.append({"images": b, "tflop": tflop, "y": m, "lo": lo, "hi": hi})
    return pts
