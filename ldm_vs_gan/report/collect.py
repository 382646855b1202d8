"""What the comparison report reads from run directories.

Per run: its config (family, seed), every ``eval/eval_*.json`` (numbers with provenance), the
training log ``metrics.jsonl`` (quick-eval curves, img/s, a training-time axis), parameter counts
(trainable = ``Family.networks()``, frozen = everything else the family holds: CLIP, VAE), and a
sample grid of a fixed prompt panel with fixed seeds, timed (sampling latency per image).
"""

from __future__ import annotations

import json
import math
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from omegaconf import OmegaConf

# Metrics where smaller is better; every other plotted or headline metric is higher-better.
LOWER_BETTER = ("fid", "kid", "fid_toy", "fid_clip", "cmmd")


@dataclass
class RunInfo:
    path: Path
    name: str
    family: str  # the group the report puts the run in: its model family unless compare got LABEL=RUN
    seed: int
    model: str = ""  # the model family (config model.name)
    evals: list[dict] = field(default_factory=list)
    log: list[dict] = field(default_factory=list)
    params: dict = field(default_factory=dict)
    img_per_s: float = math.nan
    grid: torch.Tensor | None = None  # uint8 (P, 3, H, W)
    grid_captions: list[str] = field(default_factory=list)
    latency_s: float = math.nan  # seconds per image at the family's default sampling (panel batch)
    images_seen: int = 0


def read_log(path: Path) -> list[dict]:
    rows = []
    if path.is_file():
        for ln in path.read_text().splitlines():
            try:
                rows.append(json.loads(ln))
            except json.JSONDecodeError:
                continue  # a line cut by a kill: skip it, keep the rest
    return rows


def training_time_axis(rows: list[dict]) -> dict[int, float]:
    """images_seen -> seconds of training so far, integrated from the logged img/s of each
    interval (the log has no wall clock; this excludes evaluation and sampling time, which is the
    fair figure between families)."""
    t, prev, out = 0.0, 0, {0: 0.0}
    for r in rows:
        ips = r.get("img_per_s")
        if ips and ips == ips and ips > 0 and "images_seen" in r:
            t += (r["images_seen"] - prev) / ips
            prev = r["images_seen"]
            out[prev] = t
    return out


def flops_per_image(rows: list[dict]) -> float | None:
    """Training FLOPs per image as the engine counted them (forward and backward of every phase)."""
    return next((r["flops_per_image"] for r in rows if r.get("flops_per_image")), None)


def curve(rows: list[dict], key: str) -> list[tuple[int, float, float]]:
    """[(images_seen, training seconds, value)] of a quick-eval scalar (logged as ``eval/<key>``)."""
    times = training_time_axis(rows)
    known = sorted(times)
    pts = []
    for r in rows:
        v = r.get(f"eval/{key}")
        if v is None or "images_seen" not in r:
            continue
        seen = r["images_seen"]
        before = [k for k in known if k <= seen]
        pts.append((seen, times[before[-1]] if before else 0.0, float(v)))
    return pts


def param_counts(family) -> dict:
    trainable = sum(p.numel() for m in family.networks().values() for p in m.parameters())
    total = sum(p.numel() for p in family.parameters())
    return {"trainable": int(trainable), "frozen": int(total - trainable), "total": int(total)}


def collect(
    run_dir: str | Path, *, panel_captions: list[str] | None, panel_seeds: list[int], with_grid: bool = True
) -> RunInfo:
    from ldm_vs_gan.training import load_run

    path = Path(run_dir)
    cfg = OmegaConf.load(path / "config.yaml")
    info = RunInfo(
        path=path, name=path.name, family=str(cfg.model.get("name", "?")), seed=int(cfg.get("seed", 0))
    )
    info.model = info.family
    for f in sorted((path / "eval").glob("eval_*.json")):
        try:
            d = json.loads(f.read_text())
        except json.JSONDecodeError:
            continue
        if "metrics" in d and "provenance" in d:
            d["file"] = f.name
            info.evals.append(d)
    info.log = read_log(path / "metrics.jsonl")
    ips = [r["img_per_s"] for r in info.log if r.get("img_per_s") and r["img_per_s"] == r["img_per_s"]]
    info.img_per_s = statistics.median(ips[1:] or ips) if ips else math.nan  # first interval holds start-up
    fam, _, meta = load_run(path)
    info.images_seen = int(meta["images_seen"])
    info.params = param_counts(fam)
    if with_grid and panel_captions:
        fam.generate(panel_captions[:1], panel_seeds[:1])  # warm-up (lazy init, allocator)
        t0 = time.perf_counter()
        info.grid = fam.generate(panel_captions, panel_seeds).cpu()
        info.latency_s = (time.perf_counter() - t0) / len(panel_captions)
        info.grid_captions = list(panel_captions)
    return info


def panel(run_dir: str | Path, n: int) -> list[str]:
    """The fixed prompt panel: the first ``n`` held-out captions of the first run's data."""
    from ldm_vs_gan.data import heldout_batch

    cfg = OmegaConf.load(Path(run_dir) / "config.yaml")
    return heldout_batch(cfg.data, n).captions


def comparable_key(ev: dict) -> tuple:
    """Numbers are side by side only with the same N, extractor (and weights), data and split, and
    the same sampling overrides (none = each family's defaults)."""
    p = ev["provenance"]
    ext = p.get("extractor") or {}
    ov = p.get("sampling_overrides") or {}
    return (
        p.get("num_samples"),
        ext.get("name"),
        (ext.get("weights_sha256") or "")[:12],
        (p.get("data") or {}).get("source"),
        (p.get("data") or {}).get("split"),
        ", ".join(f"{k}={v}" for k, v in sorted(ov.items())) or "defaults",
    )


def fidelity_key(ev: dict) -> tuple:
    """Prompt-fidelity numbers are side by side with the same N, toy judge (and weights), data and
    split, and sampling overrides; FID's feature space is no part of them."""
    n, _, _, source, split, sampling = comparable_key(ev)
    judge = ev["provenance"].get("judge") or {}
    return (n, judge.get("name"), (judge.get("sha256") or "")[:12], source, split, sampling)


def mean_std(vals: list[float]) -> tuple[float, float, int]:
    vals = [v for v in vals if v is not None and v == v]
    if not vals:
        return math.nan, math.nan, 0
    return statistics.fmean(vals), (statistics.stdev(vals) if len(vals) > 1 else 0.0), len(vals)
