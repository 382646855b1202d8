"""report.md (figures as files next to it) and a self-contained report.html (figures as base64)."""

from __future__ import annotations

import base64
import html
import math
import re
from pathlib import Path

from ldm_vs_gan.report.collect import LOWER_BETTER, RunInfo, comparable_key, fidelity_key, mean_std

HEADLINE = ("fid", "kid", "is", "clip_score", "fidelity", "diversity", "diversity_real", "diversity_ratio")
# GenEval's task breakdown (Ghosh et al. 2023) in the toy world: (row, key the toy evaluation writes,
# key of the judge's own held-out accuracy, the ceiling of that task; None: the judge has none). The
# judge's shape/colour/size accuracies pool every object of the held-out split, one- and two-object.
TASKS = (
    ("single object (shape + colour)", "fidelity/single/overall", "single_overall"),
    ("colour", "fidelity/single/color", "color"),
    ("shape", "fidelity/single/shape", "shape"),
    ("size", "fidelity/single/size", "size"),
    ("counting: one object", "fidelity/single/count", "count"),
    ("counting: two objects", "fidelity/two/count", "count"),
    ("two objects (both + relation)", "fidelity/two/overall", "two_overall"),
    ("relation (position)", "fidelity/two/relation", "relation"),
    ("attribute binding (strict: + sizes, count)", "fidelity/two/strict", None),
    ("all prompts", "fidelity", "overall"),
)


def fmt(m: float, s: float, n: int) -> str:
    if n == 0 or m != m:
        return "-"
    if s == 0 and float(m).is_integer() and abs(m) >= 1:
        return f"{int(m)}" + (f" (n={n})" if n > 1 else "")
    digits = 4 if abs(m) < 1 else 2
    return f"{m:.{digits}f} ± {s:.{digits}f} (n={n})" if n > 1 else f"{m:.{digits}f}"


def fmt_ci(vals: list[float], digits: int | None = None) -> str:
    """``mean ± std [95% CI]`` over a family's runs (seeds): a percentile bootstrap of the mean;
    with 3 seeds it is crude and too narrow, so it is shown next to the spread, not instead.
    ``digits``: decimals (default 4 below 1, else 2)."""
    from ldm_vs_gan.metrics.stats import bootstrap_ci

    m, s, n = mean_std(vals)
    if n < 2 or m != m:
        return fmt(m, s, n)
    _, lo, hi = bootstrap_ci(vals)
    digits = digits if digits is not None else (4 if abs(m) < 1 else 2)
    return f"{m:.{digits}f} ± {s:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}] (n={n})"


def difference(a: list[float], b: list[float]) -> str:
    """Whether two families differ on a metric: the exact two-sided permutation test of the
    difference of means over seeds (no normality assumed; 3 vs 3 cannot go below p = 0.1)."""
    from ldm_vs_gan.metrics.stats import permutation_test

    if len(a) < 2 or len(b) < 2:
        return "-"
    p = permutation_test(a, b)
    return f"p = {p:.2f}" + (" (differ)" if p < 0.05 else "")


def metrics_tables(runs: list[RunInfo]) -> list[tuple[str, list[str], list[list[str]]]]:
    """One table per comparability group (same N, extractor, data/split, sampling overrides):
    rows = metrics, columns = families (mean ± std [95% bootstrap CI] over that family's runs,
    i.e. seeds) and, for two families, the permutation test of their difference."""
    fams = sorted({r.family for r in runs})
    groups: dict[tuple, dict[str, dict[str, list[float]]]] = {}
    for r in runs:
        for ev in r.evals:
            g = groups.setdefault(comparable_key(ev), {})
            for k, v in ev["metrics"].items():
                if isinstance(v, (int, float)):
                    g.setdefault(k, {}).setdefault(r.family, []).append(float(v))
    lat = {}
    for r in runs:
        for ev in r.evals:
            s = ev["provenance"].get("seconds_per_image")
            if s is not None:
                lat.setdefault(comparable_key(ev), {}).setdefault(r.family, []).append(float(s))
    tables = []
    for key, g in sorted(groups.items(), key=lambda kv: str(kv[0])):
        n, ext, sha, src, split, samp = key
        title = f"N={n}, features={ext} ({sha}), data={src}/{split}, sampling={samp}"
        names = [k for k in HEADLINE if k in g] + sorted(k for k in g if k not in HEADLINE)
        rows = []
        for k in names:
            arrow = " ↓" if k in LOWER_BETTER else (" ↑" if k in ("is", "clip_score", "fidelity") else "")
            test = [difference(g[k].get(fams[0], []), g[k].get(fams[1], []))] if len(fams) == 2 else []
            rows.append([k + arrow] + [fmt_ci(g[k].get(f, [])) for f in fams] + test)
        if key in lat:
            test = ["-"] if len(fams) == 2 else []
            rows.append(["eval seconds/image"] + [fmt(*mean_std(lat[key].get(f, []))) for f in fams] + test)
        header = ["metric"] + fams + (["difference (permutation test)"] if len(fams) == 2 else [])
        tables.append((title, header, rows))
    return tables


def task_tables(runs: list[RunInfo]) -> list[tuple[str, list[str], list[list[str]]]]:
    """Prompt fidelity by task (:data:`TASKS`), one table per :func:`fidelity_key` group: columns =
    families (mean ± std [95% CI] over runs, a run's evaluations in the group averaged into one
    number), the judge's held-out accuracy (the ceiling) and, for two families, the permutation
    test. Empty when no run has fidelity numbers."""
    fams = sorted({r.family for r in runs})
    groups: dict[tuple, dict] = {}
    for r in runs:
        for ev in r.evals:
            if not any(k == "fidelity" or k.startswith("fidelity/") for k in ev["metrics"]):
                continue
            g = groups.setdefault(fidelity_key(ev), {"by_run": {}, "first": ev})
            g["by_run"].setdefault((r.family, r.name), []).append(ev["metrics"])
    tables = []
    for key, g in sorted(groups.items(), key=lambda kv: str(kv[0])):
        n, judge, sha, src, split, samp = key
        title = f"N={n}, judge={judge} ({sha}), data={src}/{split}, sampling={samp}"
        m = g["first"]["metrics"]
        if "fidelity/n_single" in m and "fidelity/n_two" in m:
            title += (
                f", prompts: {m['fidelity/n_single']:.0f} one-object + {m['fidelity/n_two']:.0f} two-object"
            )
        ceiling = (g["first"]["provenance"].get("judge") or {}).get("heldout_accuracy") or {}
        rows = [
            _task_row(label, k, ceiling.get(jk) if jk else None, g["by_run"], fams) for label, k, jk in TASKS
        ]
        header = ["task"] + fams + ["judge held-out accuracy (ceiling)"]
        header += ["difference (permutation test)"] if len(fams) == 2 else []
        tables.append((title, header, [row for row in rows if row is not None]))
    return tables


def _task_row(label: str, key: str, ceiling, by_run: dict, fams: list[str]) -> list[str] | None:
    """One task's cells (one number per run: the mean of its evaluations), or None when no run has it."""
    vals: dict[str, list[float]] = {f: [] for f in fams}
    for (fam, _), metrics in by_run.items():
        got = [float(m[key]) for m in metrics if isinstance(m.get(key), (int, float)) and m[key] == m[key]]
        if got:  # NaN: the prompt set had no prompt of this kind
            vals[fam].append(sum(got) / len(got))
    if not any(vals.values()):
        return None
    cell = f"{float(ceiling):.4f}" if isinstance(ceiling, (int, float)) and ceiling == ceiling else "-"
    test = [difference(vals[fams[0]], vals[fams[1]])] if len(fams) == 2 else []
    return [label] + [fmt_ci(vals[f]) for f in fams] + [cell] + test


def compute_table(runs: list[RunInfo]) -> tuple[list[str], list[list[str]]]:
    fams = sorted({r.family for r in runs})
    by = {f: [r for r in runs if r.family == f] for f in fams}

    def col(f, get):
        return fmt(*mean_std([get(r) for r in by[f]]))

    rows = [
        ["runs (seeds)"] + [", ".join(str(r.seed) for r in by[f]) for f in fams],
        ["images seen"] + [col(f, lambda r: float(r.images_seen)) for f in fams],
        ["trainable params (M)"]
        + [col(f, lambda r: r.params.get("trainable", math.nan) / 1e6) for f in fams],
        ["frozen params (M)"] + [col(f, lambda r: r.params.get("frozen", math.nan) / 1e6) for f in fams],
        ["training img/s (median)"] + [col(f, lambda r: r.img_per_s) for f in fams],
        ["sampling s/image (panel, defaults)"] + [col(f, lambda r: r.latency_s) for f in fams],
    ]
    return ["", *fams], rows


def md_table(header: list[str], rows: list[list[str]]) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(out)


def write(
    out: Path, runs: list[RunInfo], figures: dict[str, Path | None], notes: list[str]
) -> tuple[Path, Path]:
    parts = ["# LDM vs GAN: comparison report", ""]
    parts.append(
        "Runs: " + ", ".join(f"`{r.name}` ({r.family}, seed {r.seed}, {r.images_seen} images)" for r in runs)
    )
    parts += ["", "## Metrics (only comparable numbers side by side)", ""]
    for title, header, rows in metrics_tables(runs) or [
        ("no evaluations found (run `python -m ldm_vs_gan.eval`)", [], [])
    ]:
        parts += [f"### {title}", ""]
        if rows:
            parts += [md_table(header, rows), ""]
    parts += _task_section(runs)
    parts += ["## Compute and speed", "", md_table(*compute_table(runs)), ""]
    captions = {
        "samples": "Samples: the same prompts and seeds for every run",
        "curves": (
            "Quick evaluation during training: against images seen, training time and training "
            "compute (the engine's FLOP count)"
        ),
        "tasks": "Prompt fidelity by task during training (quick evaluation)",
        "health": (
            "Training health: recall and coverage on the quick-evaluation panel (mode collapse as it "
            "happens), CLIP-vs-judge agreement on the fakes, Mate-D's preference for the true caption "
            "over one with an attribute swapped (GAN), held-out loss per timestep stratum (LDM)"
        ),
        "nfe_fid": "FID against sampling latency (LDM: steps annotated; GAN: one step)",
        "nfe_fidelity": "Prompt fidelity against sampling latency",
        "tradeoff_clip_score": "Trade-off: FID against CLIP score (LDM guidance, GAN truncation swept)",
        "tradeoff_fidelity": "Trade-off: FID against prompt fidelity (LDM guidance, GAN truncation swept)",
    }
    for key, cap in captions.items():
        p = figures.get(key)
        if p is not None:
            parts += [f"## {cap}", "", f"![{cap}]({p.name})", ""]
    if notes:
        parts += ["## Notes", ""] + [f"- {n}" for n in notes] + [""]
    md = "\n".join(parts)
    md_path = out / "report.md"
    md_path.write_text(md)
    html_path = out / "report.html"
    html_path.write_text(to_html(md, out))
    return md_path, html_path


def _task_section(runs: list[RunInfo]) -> list[str]:
    """The report's "Prompt fidelity by task" lines, none when no run has fidelity numbers."""
    tables = task_tables(runs)
    if not tables:
        return []
    parts = [
        "## Prompt fidelity by task",
        "",
        "Share of generated images whose toy-judge reading matches the prompt, per task as GenEval "
        "(Ghosh et al. 2023) splits it; colour, shape, size are on one-object prompts. The judge's "
        "own accuracy on real held-out images is the ceiling of each task.",
        "",
    ]
    for title, header, rows in tables:
        parts += [f"### {title}", "", md_table(header, rows), ""]
    return parts


def to_html(md: str, folder: Path) -> str:
    """A small Markdown subset (headings, tables, lists, images, code) to HTML, images inlined."""
    body, in_table, in_list = [], False, False
    for line in md.splitlines():
        if line.startswith("|"):
            cells = [c.strip() for c in line.strip("|").split("|")]
            if all(re.fullmatch(r"-+", c) for c in cells if c):
                continue
            tag = "th" if not in_table else "td"
            if not in_table:
                body.append("<table>")
                in_table = True
            body.append("<tr>" + "".join(f"<{tag}>{_inline(c)}</{tag}>" for c in cells) + "</tr>")
            continue
        if in_table:
            body.append("</table>")
            in_table = False
        if line.startswith("- "):
            if not in_list:
                body.append("<ul>")
                in_list = True
            body.append(f"<li>{_inline(line[2:])}</li>")
            continue
        if in_list:
            body.append("</ul>")
            in_list = False
        m = re.fullmatch(r"!\[(.*)\]\((.*)\)", line)
        if m:
            data = base64.b64encode((folder / m.group(2)).read_bytes()).decode()
            body.append(f'<img alt="{html.escape(m.group(1))}" src="data:image/png;base64,{data}">')
        elif line.startswith("#"):
            level = len(line) - len(line.lstrip("#"))
            body.append(f"<h{level}>{_inline(line[level:].strip())}</h{level}>")
        elif line.strip():
            body.append(f"<p>{_inline(line)}</p>")
    if in_table:
        body.append("</table>")
    if in_list:
        body.append("</ul>")
    style = (
        "body{font-family:sans-serif;max-width:1100px;margin:2em auto}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:3px 8px;font-size:13px}img{max-width:100%}"
    )
    return f"<!doctype html><html><head><meta charset='utf-8'><title>LDM vs GAN report</title><style>{style}</style></head><body>{''.join(body)}</body></html>\n"


def _inline(s: str) -> str:
    s = html.escape(s)
    return re.sub(r"`([^`]*)`", r"<code>\1</code>", s)
