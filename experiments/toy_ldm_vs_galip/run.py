"""The first study: LDM vs GALIP on the toy world, same image budget, 3 seeds each (`make compare`).

Stages (each skipped when its output exists, so an interrupted study resumes where it stopped; a
half-trained run resumes exactly through the engine):
  1. train  `python -m ldm_vs_gan.train model=<family> seed=<s> run_dir=<runs>/<family>-s<s> ...`
  2. eval   `python -m ldm_vs_gan.eval --run <run> --metric fid,kid,fidelity,diversity,clip_score ...`
            plus, for the LDM, an NFE sweep (--steps K) on the first seed(s)
  3. report `python -m ldm_vs_gan.compare <runs...> --out experiments/toy_ldm_vs_galip/report`
            and the results table written into README.md between the results markers.

The toy world, the toy CLIP/VAE and the toy judge are built on first use and cached
($LDM_VS_GAN_CACHE or ~/.cache/ldm_vs_gan). Default budgets (12k images per run, two runs at a
time with `--jobs 2`) fit the whole study in well under 90 min on 2 CPU cores, first-use stages
included; `--budget` scales it. `--dry-run` prints the commands only.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
PY = sys.executable
EVAL_METRICS = "fid,kid,prdc,cmmd,fidelity,diversity,clip_score"
TABLE_KEYS = [  # (metric key in eval JSON / summary, label, digits)
    ("fid", "FID-toy (judge features) ↓", 2),
    ("kid", "KID-toy ↓", 4),
    ("fidelity", "prompt fidelity, all prompts ↑", 3),
    # The study's headline figure: single-object prompts with shape and colour both right.
    ("fidelity/single/overall", "prompt fidelity, single-object ↑", 3),
    ("fidelity/single/shape", "shape right, single-object ↑", 3),
    ("fidelity/two/overall", "prompt fidelity, two-object ↑", 3),
    ("precision", "precision (judge features, k=5) ↑", 3),
    ("recall", "recall (judge features, k=5) ↑", 3),
    ("coverage", "coverage (judge features, k=5) ↑", 3),
    ("cmmd", "CMMD (toy CLIP) ↓", 2),
    ("diversity", "diversity (gen)", 4),
    ("diversity_real", "diversity (real)", 4),
    ("diversity_ratio", "diversity gen/real", 3),
    ("clip_score", "CLIP score (toy CLIP, same as training) ↑", 2),
    ("latency_s", "sampling s/image (defaults, batch 8)", 4),
    ("img_per_s", "training img/s", 1),
]


def tradeoff_cmds(run: Path, fam: str, a, root: Path) -> list[tuple[list[str], Path]]:
    """The quality/diversity trade-off: FID, fidelity and CLIP score at N=--nfe-n at the family's
    default sampling and while the LDM's guidance scale or the GAN's truncation sweeps."""
    knob, values = ("guidance", a.guidance) if fam == "ldm" else ("truncation", a.truncation)
    cmds = []
    for v in ["default", *[x.strip() for x in values.split(",") if x.strip()]]:
        f = run / "eval" / f"eval_study_{knob}_{v}.json"
        if f.exists():
            continue
        cmd = [PY, "-m", "ldm_vs_gan.eval", "--run", str(run), "--metric", "fid,fidelity,clip_score"]
        cmd += ["--num-samples", str(a.nfe_n), "--out", str(f)]
        cmd += [f"--{knob}", v] if v != "default" else []
        cmds.append((cmd, root / "logs" / f"{run.name}.tradeoff.log"))
    return cmds


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--families", default="ldm,galip")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--budget", type=int, default=12000, help="images seen per run (same for every family)")
    p.add_argument("--batch-size", type=int, default=32, help="global training batch (same for every family)")
    p.add_argument("--eval-n", type=int, default=500, help="N of the final evaluation (held-out prompts)")
    p.add_argument(
        "--quick-every", type=int, default=4000, help="quick-eval interval (images) for the curves"
    )
    p.add_argument("--nfe", default="5,10,25,50", help="LDM sampling steps of the NFE sweep ('' = none)")
    p.add_argument("--nfe-seeds", type=int, default=1, help="how many seeds get the NFE sweep")
    p.add_argument("--nfe-n", type=int, default=200, help="N of the NFE sweep evaluations")
    p.add_argument(
        "--guidance", default="1,2,5,7", help="LDM guidance scales of the trade-off sweep ('' = none)"
    )
    p.add_argument(
        "--truncation", default="0.5,1,1.5,2", help="GAN truncations of the trade-off sweep ('' = none)"
    )
    p.add_argument("--runs-root", default=str(REPO / "runs" / "toy_ldm_vs_galip"))
    p.add_argument("--out", default=str(HERE / "report"))
    p.add_argument(
        "--extra", default="", help="extra Hydra overrides for every training run (space separated)"
    )
    p.add_argument(
        "--preset",
        default=None,
        help="per-family Hydra experiment preset suffix: 'tiny' adds experiment=<family>_tiny "
        "(random tiny CLIP/VAE: a pipeline smoke test, not the study)",
    )
    p.add_argument(
        "--jobs",
        type=int,
        default=2,
        help="training/evaluation processes at once, each with cores/jobs OpenMP threads (2 cores: "
        "two single-threaded runs beat one two-threaded run; results do not depend on it)",
    )
    p.add_argument("--dry-run", action="store_true")
    return p.parse_args(argv)


THREADS = {"n": None}  # OpenMP threads per subprocess (main sets it from --jobs)


def sh(cmd: list[str], dry: bool, log: Path | None = None) -> float:
    print("$ " + " ".join(cmd), flush=True)
    if dry:
        return 0.0
    t0 = time.perf_counter()
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": os.environ.get("HF_HUB_OFFLINE", "1"),
        "WANDB_MODE": os.environ.get("WANDB_MODE", "offline"),
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS") or str(THREADS["n"] or 2),
    }
    if log is not None:
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "a") as f:
            r = subprocess.run(cmd, cwd=REPO, env=env, stdout=f, stderr=subprocess.STDOUT)
    else:
        r = subprocess.run(cmd, cwd=REPO, env=env)
    if r.returncode != 0:
        tail = log.read_text()[-2000:] if log is not None and log.exists() else ""
        raise SystemExit(f"command failed ({r.returncode}): {' '.join(cmd)}\n{tail}")
    return time.perf_counter() - t0


def trained(run: Path, budget: int) -> bool:
    man = run / "weights" / "manifest.json"
    return man.is_file() and json.loads(man.read_text()).get("images_seen", 0) >= budget


def run_all(jobs: list[tuple[str, list[tuple[list[str], Path]]]], n: int, dry: bool) -> dict[str, float]:
    """Run ``(key, [(cmd, log), ...])`` jobs, ``n`` at a time (commands of one job in order).
    Returns the wall seconds per key. The first failure stops the study (after running jobs end)."""

    def one(job):
        key, cmds = job
        return key, sum(sh(cmd, dry, log) for cmd, log in cmds)

    if n <= 1 or dry:
        return dict(map(one, jobs))
    with ThreadPoolExecutor(n) as pool:
        return dict(pool.map(one, jobs))


def main(argv=None) -> int:
    a = parse_args(argv)
    fams, seeds = a.families.split(","), [int(s) for s in a.seeds.split(",")]
    root, out = Path(a.runs_root), Path(a.out)
    jobs = max(1, a.jobs)
    THREADS["n"] = max(1, (os.cpu_count() or 2) // jobs)
    timings: dict[str, float] = {}
    t_start = time.perf_counter()
    runs, train_jobs = [], []
    for fam in fams:
        for s in seeds:
            run = root / f"{fam}-s{s}"
            runs.append(run)
            if trained(run, a.budget):
                print(f"skip training {run.name}: done")
                continue
            cmd = [
                PY,
                "-m",
                "ldm_vs_gan.train",
                f"model={fam}",
                f"seed={s}",
                f"run_dir={run}",
                "logger=none",
                f"trainer.max_images={a.budget}",
                f"trainer.batch_size={a.batch_size}",
                f"trainer.eval_every={a.quick_every}",
                "trainer.eval.n=256",
                f"trainer.sample_every={a.budget // 2}",
                f"trainer.ckpt_every={a.budget // 4}",
                f"trainer.log_every={max(a.batch_size, a.budget // 50)}",
                "trainer.progress=false",
                *([f"experiment={fam}_{a.preset}"] if a.preset else []),
                *a.extra.split(),
            ]
            train_jobs.append((f"train/{run.name}", [(cmd, root / "logs" / f"{run.name}.train.log")]))
    # families interleaved (seed-major) so both cores stay busy when one family is slower; the
    # first-use stages (toy world, CLIP, VAE, judge) are file-locked: concurrent runs wait for them
    train_jobs.sort(key=lambda j: (int(j[0].rsplit("-s", 1)[1]), fams.index(j[0][6:].rsplit("-s", 1)[0])))
    timings.update(run_all(train_jobs, jobs, a.dry_run))
    nfe = [int(k) for k in a.nfe.split(",") if k.strip()]
    eval_jobs = []
    for run in runs:
        cmds: list[tuple[list[str], Path]] = []
        eval_jobs.append((f"eval/{run.name}", cmds))
        main_json = run / "eval" / "eval_study_main.json"
        if not main_json.exists():
            cmd = [
                PY,
                "-m",
                "ldm_vs_gan.eval",
                "--run",
                str(run),
                "--metric",
                EVAL_METRICS,
                "--num-samples",
                str(a.eval_n),
                "--out",
                str(main_json),
            ]
            cmds.append((cmd, root / "logs" / f"{run.name}.eval.log"))
        fam, s = run.name.rsplit("-s", 1)
        if fam == "ldm" and int(s) in seeds[: a.nfe_seeds]:
            for k in nfe:
                f = run / "eval" / f"eval_study_steps{k:03d}.json"
                if not f.exists():
                    cmd = [
                        PY,
                        "-m",
                        "ldm_vs_gan.eval",
                        "--run",
                        str(run),
                        "--metric",
                        "fid,fidelity",
                        "--num-samples",
                        str(a.nfe_n),
                        "--steps",
                        str(k),
                        "--out",
                        str(f),
                    ]
                    cmds.append((cmd, root / "logs" / f"{run.name}.nfe.log"))
        if fam != "ldm" and nfe and int(s) in seeds[: a.nfe_seeds]:  # the GAN's single step at the same N
            f = run / "eval" / "eval_study_onestep.json"
            if not f.exists():
                cmd = [
                    PY,
                    "-m",
                    "ldm_vs_gan.eval",
                    "--run",
                    str(run),
                    "--metric",
                    "fid,fidelity",
                    "--num-samples",
                    str(a.nfe_n),
                    "--out",
                    str(f),
                ]
                cmds.append((cmd, root / "logs" / f"{run.name}.nfe.log"))
        if int(s) in seeds[: a.nfe_seeds]:
            cmds += tradeoff_cmds(run, fam, a, root)
    timings.update(run_all([j for j in eval_jobs if j[1]], jobs, a.dry_run))
    timings["report"] = sh([PY, "-m", "ldm_vs_gan.compare", *map(str, runs), "--out", str(out)], a.dry_run)
    timings["total"] = time.perf_counter() - t_start
    if a.dry_run:
        return 0
    # A resumed study (some runs already trained) keeps the timings of the stages it skipped, and
    # its total is the wall time of every invocation: a resume that only re-renders the report must
    # not replace 40 minutes with 40 seconds. A study that trained every run starts afresh, so
    # nothing of an older study in the same --out survives.
    resumed = len(train_jobs) < len(runs) and (out / "timings.json").exists()
    prev = json.loads((out / "timings.json").read_text()) if resumed else {}
    timings["total"] += prev.get("total", 0.0)
    (out / "timings.json").write_text(json.dumps({**prev, **timings}, indent=2) + "\n")
    table = results_table(out / "summary.json", fams, a)
    (out / "results.md").write_text(table + "\n")
    if out.resolve() == (HERE / "report").resolve() and not a.preset:  # smoke runs never touch README
        update_readme(table)
    print(table)
    return 0


def results_table(summary_path: Path, fams: list[str], a) -> str:
    """Per family: mean ± std over seeds of the final evaluation (eval_study_main.json) and the
    compute figures."""
    summ = json.loads(summary_path.read_text())
    vals: dict[str, dict[str, list[float]]] = {f: {} for f in fams}
    for info in summ.values():
        fam = info["family"]
        if fam not in vals:
            continue
        main = next((e["metrics"] for e in info["evals"] if e["file"] == "eval_study_main.json"), {})
        row = {**main, "latency_s": info["latency_s"], "img_per_s": info["img_per_s"]}
        for k, _, _ in TABLE_KEYS:
            v = row.get(k)
            if isinstance(v, (int, float)) and not math.isnan(v):
                vals[fam].setdefault(k, []).append(float(v))
    lines = [
        f"Budget {a.budget} images per run, batch {a.batch_size}, final evaluation N={a.eval_n} "
        f"held-out prompts; mean ± std over seeds {a.seeds}.",
        "",
        "| | " + " | ".join(fams) + " |",
        "|---|" + "---|" * len(fams),
    ]
    for k, label, d in TABLE_KEYS:
        cells = []
        for f in fams:
            v = vals[f].get(k, [])
            if not v:
                cells.append("-")
            elif len(v) == 1:
                cells.append(f"{v[0]:.{d}f} (n=1)")
            else:
                cells.append(f"{statistics.fmean(v):.{d}f} ± {statistics.stdev(v):.{d}f} (n={len(v)})")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def update_readme(table: str) -> None:
    readme = HERE / "README.md"
    text = readme.read_text()
    start, end = "<!-- results:start -->", "<!-- results:end -->"
    if start in text and end in text:
        head, rest = text.split(start, 1)
        _, tail = rest.split(end, 1)
        readme.write_text(f"{head}{start}\n{table}\n{end}{tail}")


if __name__ == "__main__":
    sys.exit(main())
