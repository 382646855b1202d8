"""The study: LDM vs GALIP on the toy world at equal images, over seeds and a ladder of budgets.

`make compare` trains every contestant to the first budget for every seed (12k images, seeds
0,1,2); `make compare-long` adds the long ladder: each further budget for the long seeds, plus
side contestants (GALIP at the official learning rates, without translation) at every budget for
the long seeds. Each (contestant, budget, seed) is its own run from scratch, so a run's learning-
rate schedule ends at its own budget.

Stages (each skipped when its output exists, so an interrupted study resumes where it stopped; a
half-trained run resumes exactly through the engine's checkpoint):
  1. train  `python -m ldm_vs_gan.train model=<family> seed=<s> run_dir=<runs>/<name> ...`
  2. eval   `python -m ldm_vs_gan.eval --run <run> --metric fid,kid,prdc,cmmd,fidelity,...`,
            an NFE sweep (--steps K) on the first seed of the first budget, and the guidance /
            truncation trade-off sweep on the first seed of every budget
            and the diagnosis of every run (diagnose.py: what the judge and the frozen CLIP read)
  3. report `python -m ldm_vs_gan.compare LABEL=RUN ... --out <out>`, the per-budget tables
            (ladder.py) and, for the default report folder, the README's results block.

Where the time went (wall and CPU seconds of every command) is in `<out>/timings.json`. The toy
world, CLIP, VAE and judge are built on first use and cached ($LDM_VS_GAN_CACHE or
~/.cache/ldm_vs_gan). `--dry-run` prints the commands only.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(HERE))
import ladder  # noqa: E402

PY = sys.executable
EXIT_STOPPED = 75  # python -m ldm_vs_gan.train: stopped by a signal after a checkpoint, resumable
EVAL_METRICS = "fid,kid,prdc,cmmd,fidelity,diversity,clip_score"
CONTESTANTS = {  # name: (model family, Hydra overrides on top of the family's toy defaults)
    "ldm": ("ldm", []),
    "galip": ("galip", []),
    # GALIP as its authors train it (Tao et al. 2023, official code): generator lr 1e-4 rather than
    # the toy default 4e-4, and no translation augmentation of the discriminator's inputs.
    "galip_faithful": ("galip", ["model.optim.lr_g=1e-4", "model.augment.translation=0"]),
}


@dataclass
class Run:
    contestant: str
    budget: int
    seed: int
    path: Path
    first_rung: bool
    label: str  # the report's group: the contestant, with its budget when the ladder has several

    @property
    def family(self) -> str:
        return CONTESTANTS[self.contestant][0]


def plan(a) -> list[Run]:
    """The ladder: contestants x first budget x seeds, then contestants x later budgets x long
    seeds; side contestants at every budget for the long seeds only."""
    budgets = [int(b) for b in a.budgets.split(",")]
    seeds, long_seeds = _ints(a.seeds), _ints(a.long_seeds)
    main, side = _names(a.contestants), _names(a.side_contestants)
    root, runs = Path(a.runs_root), []
    for i, b in enumerate(budgets):
        for c in main + side:
            for s in seeds if (i == 0 and c in main) else long_seeds:
                name = f"{c}-s{s}" if i == 0 else f"{c}-{_short(b)}-s{s}"
                label = c if len(budgets) == 1 else f"{c}@{_short(b)}"
                runs.append(Run(c, b, s, root / name, i == 0, label))
    return runs


def _short(images: int) -> str:
    return f"{images // 1000}k" if images % 1000 == 0 else str(images)


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def _names(text: str) -> list[str]:
    names = [x.strip() for x in text.split(",") if x.strip()]
    for n in names:
        if n not in CONTESTANTS:
            raise SystemExit(f"unknown contestant {n!r}: choose from {', '.join(CONTESTANTS)}")
    return names


def train_cmd(run: Run, a) -> list[str]:
    b = run.budget
    return [
        PY, "-m", "ldm_vs_gan.train", f"model={run.family}", f"seed={run.seed}", f"run_dir={run.path}",
        "logger=none", f"trainer.max_images={b}", f"trainer.batch_size={a.batch_size}",
        f"trainer.eval_every={a.quick_every}", "trainer.eval.n=256", f"trainer.sample_every={b // 4}",
        f"trainer.ckpt_every={b // 4}", f"trainer.log_every={max(a.batch_size, b // 50)}",
        "trainer.progress=false", *CONTESTANTS[run.contestant][1],
        *([f"experiment={run.family}_{a.preset}"] if a.preset else []), *a.extra.split(),
    ]  # fmt: skip


def _eval(run: Path, metrics: str, n: int, out: str, *extra: str) -> list[str]:
    f = run / "eval" / out
    return [PY, "-m", "ldm_vs_gan.eval", "--run", str(run), "--metric", metrics, "--num-samples", str(n),
            "--out", str(f), *extra]  # fmt: skip


def eval_cmds(run: Run, a, seeds: list[int], long_seeds: list[int]) -> list[tuple[list[str], Path]]:
    """The final evaluation; the NFE sweep on the first seed of the first budget; the trade-off
    sweep on the first seed of every budget (main contestants); the shape diagnosis (diagnose.py)."""
    logs, out = Path(a.runs_root) / "logs", []
    out.append(
        (_eval(run.path, EVAL_METRICS, a.eval_n, "eval_study_main.json"), logs / f"{run.path.name}.eval.log")
    )
    first = run.seed == (seeds if run.first_rung else long_seeds)[0] and run.contestant in _names(
        a.contestants
    )
    if first and run.first_rung:
        for k in _ints(a.nfe) if run.family == "ldm" else []:
            cmd = _eval(run.path, "fid,fidelity", a.nfe_n, f"eval_study_steps{k:03d}.json", "--steps", str(k))
            out.append((cmd, logs / f"{run.path.name}.nfe.log"))
        if run.family != "ldm" and a.nfe.strip():  # the GAN's single step at the same N
            out.append(
                (
                    _eval(run.path, "fid,fidelity", a.nfe_n, "eval_study_onestep.json"),
                    logs / f"{run.path.name}.nfe.log",
                )
            )
    if first:
        knob, values = ("guidance", a.guidance) if run.family == "ldm" else ("truncation", a.truncation)
        values = [x.strip() for x in values.split(",") if x.strip()]
        for v in ["default", *values] if values else []:
            extra = [f"--{knob}", v] if v != "default" else []
            cmd = _eval(run.path, "fid,fidelity,clip_score", a.nfe_n, f"eval_study_{knob}_{v}.json", *extra)
            out.append((cmd, logs / f"{run.path.name}.tradeoff.log"))
    diag = [PY, str(HERE / "diagnose.py"), "--run", str(run.path), "--n", str(a.eval_n)]
    out.append(
        (diag + ["--out", str(run.path / "eval" / "diagnosis.json")], logs / f"{run.path.name}.diagnose.log")
    )
    return [(c, log) for c, log in out if not done(Path(c[c.index("--out") + 1]), run)]


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--contestants", "--families", default="ldm,galip", help=f"of {', '.join(CONTESTANTS)}")
    p.add_argument(
        "--side-contestants", default="", help="contestants trained for the long seeds only, at every budget"
    )
    p.add_argument("--seeds", default="0,1,2", help="seeds at the first budget")
    p.add_argument("--long-seeds", default="0", help="seeds at the later budgets (and of side contestants)")
    p.add_argument(
        "--budgets", "--budget", default="12000", help="images seen per run, a ladder: 12000,48000"
    )
    p.add_argument("--batch-size", type=int, default=32, help="global training batch (same for every family)")
    p.add_argument("--eval-n", type=int, default=500, help="N of the final evaluation (held-out prompts)")
    p.add_argument(
        "--quick-every", type=int, default=4000, help="quick-eval interval (images) for the curves"
    )
    p.add_argument("--nfe", default="5,10,25,50", help="LDM sampling steps of the NFE sweep ('' = none)")
    p.add_argument("--nfe-n", type=int, default=200, help="N of the NFE and trade-off sweeps")
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


def sh(cmd: list[str], dry: bool, log: Path | None = None, record: tuple[Path, str] | None = None):
    """Run one command; (wall seconds, CPU seconds of the command and its children). With
    ``record=(file, stage)`` both are added to that run's timings file at once, also when the
    command fails or is killed, so an interrupted and resumed run counts every piece."""
    print("$ " + " ".join(cmd), flush=True)
    if dry:
        return 0.0, 0.0
    t0 = time.perf_counter()
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": os.environ.get("HF_HUB_OFFLINE", "1"),
        "WANDB_MODE": os.environ.get("WANDB_MODE", "offline"),
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS") or str(THREADS["n"] or 2),
    }
    f = None
    if log is not None:
        log.parent.mkdir(parents=True, exist_ok=True)
        f = open(log, "a")
    try:
        proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=f, stderr=subprocess.STDOUT if f else None)
        _, status, usage = os.wait4(proc.pid, 0)  # this child's own rusage, even with others running
        proc.returncode = os.waitstatus_to_exitcode(status)
    finally:
        if f is not None:
            f.close()
    wall, cpu = time.perf_counter() - t0, usage.ru_utime + usage.ru_stime
    if record is not None:
        add_time(*record, wall, cpu)
    if proc.returncode == EXIT_STOPPED:  # the engine checkpointed on SIGTERM/SIGINT
        print(f"stopped early (resumable): {' '.join(cmd)}", file=sys.stderr)
        raise SystemExit(EXIT_STOPPED)
    if proc.returncode != 0:
        tail = log.read_text()[-2000:] if log is not None and log.exists() else ""
        raise SystemExit(f"command failed ({proc.returncode}): {' '.join(cmd)}\n{tail}")
    return wall, cpu


def on_stop_signal(signum, frame) -> None:
    """SIGTERM/SIGINT reach the whole process group: the training runs write a checkpoint and exit
    75, and the study stops after recording their seconds; the same command resumes it."""
    STOP.set()
    print(f"{signal.Signals(signum).name}: waiting for the running commands to stop", file=sys.stderr)


def add_time(path: Path, stage: str, wall: float, cpu: float) -> None:
    """Accumulate one command's seconds under ``stage`` in a run's ``timings.json``."""
    d = json.loads(path.read_text()) if path.is_file() else {}
    t = d.setdefault(stage, {"wall_s": 0.0, "cpu_s": 0.0, "commands": 0})
    t["wall_s"] += wall
    t["cpu_s"] += cpu
    t["commands"] += 1
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(d, indent=2) + "\n")
    tmp.replace(path)


def trained(run: Run) -> bool:
    """Trained to its budget; a run trained past it is refused (it is another budget's run)."""
    man = run.path / "weights" / "manifest.json"
    seen = json.loads(man.read_text()).get("images_seen", 0) if man.is_file() else 0
    if seen > run.budget:
        raise SystemExit(f"{run.path}: trained to {seen} images, not its budget {run.budget}: move it away")
    return seen == run.budget


def done(out: Path, run: Run) -> bool:
    """An evaluation's output exists and was made from this run's final weights."""
    if not out.is_file():
        return False
    d = json.loads(out.read_text())
    seen = (
        d.get("images_seen")
        if out.name == "diagnosis.json"
        else (d.get("provenance", {}).get("checkpoint") or {}).get("images_seen")
    )
    return seen == run.budget


Job = tuple[str, list[tuple[list[str], Path]], tuple[Path, str] | None]


STOP = threading.Event()  # set by a failed or stopped command, or a signal: no queued job starts


def run_all(jobs: list[Job], n: int, dry: bool) -> dict[str, dict]:
    """Run ``(key, [(cmd, log), ...], record)`` jobs, ``n`` at a time (commands of one job in
    order; ``record``: see :func:`sh`). Returns ``{key: {"wall_s", "cpu_s"}}`` of this call. The
    first failure or stop signal lets the running jobs end, starts no other, and stops the study."""

    def one(job):
        key, cmds, record = job
        times = []
        for cmd, log in cmds:
            if STOP.is_set():
                raise SystemExit(EXIT_STOPPED)
            try:
                times.append(sh(cmd, dry, log, record))
            except BaseException:
                STOP.set()
                raise
        return key, {"wall_s": sum(t[0] for t in times), "cpu_s": sum(t[1] for t in times)}

    if n <= 1 or dry:
        return dict(map(one, jobs))
    with ThreadPoolExecutor(n) as pool:
        return dict(pool.map(one, jobs))


def main(argv=None) -> int:
    a = parse_args(argv)
    runs, out = plan(a), Path(a.out)
    seeds, long_seeds = _ints(a.seeds), _ints(a.long_seeds)
    THREADS["n"] = max(1, (os.cpu_count() or 2) // max(1, a.jobs))
    STOP.clear()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, on_stop_signal)
    t_start, logs = time.perf_counter(), Path(a.runs_root) / "logs"
    train_jobs = []
    for r in runs:
        if trained(r):
            print(f"skip training {r.path.name}: done")
            continue
        record = (r.path / "timings.json", "train")
        train_jobs.append((r.path.name, [(train_cmd(r, a), logs / f"{r.path.name}.train.log")], record))
    # longest runs first, so the last to start is a short one and both cores stay busy; the
    # first-use stages (toy world, CLIP, VAE, judge) are file-locked: concurrent runs wait for them
    order = {r.path.name: (-r.budget * (3 if r.family == "galip" else 1), r.seed) for r in runs}
    train_jobs.sort(key=lambda j: order[j[0]])
    run_all(train_jobs, a.jobs, a.dry_run)
    eval_jobs = [
        (r.path.name, eval_cmds(r, a, seeds, long_seeds), (r.path / "timings.json", "eval")) for r in runs
    ]
    run_all([j for j in eval_jobs if j[1]], a.jobs, a.dry_run)
    compare = [PY, "-m", "ldm_vs_gan.compare", *[f"{r.label}={r.path}" for r in runs], "--out", str(out)]
    report = sh(compare, a.dry_run)
    if a.dry_run:
        return 0
    fresh = len(train_jobs) == len(runs)  # every run trained now: an older study's total is not ours
    write_timings(out / "timings.json", runs, report, time.perf_counter() - t_start, fresh)
    table = ladder.write(out, runs, a)
    if out.resolve().parent == HERE and not a.preset:  # smoke runs never touch README
        update_readme(table, "results" + out.name.removeprefix("report"))
    print(table)
    return 0


def write_timings(path: Path, runs: list[Run], report: tuple[float, float], wall: float, fresh: bool) -> None:
    """Where the time went: each run's train/eval seconds (its own timings.json, summed over every
    invocation that worked on it), this report's, and the wall time of every invocation of the
    study that wrote to this folder (a resume that only re-renders the report adds its seconds)."""
    prev = json.loads(path.read_text()) if path.exists() and not fresh else {}
    total = wall + (prev.get("total") or {}).get("wall_s", 0.0)
    d = {r.path.name: json.loads(f.read_text()) for r in runs if (f := r.path / "timings.json").is_file()}
    d["report"] = {"wall_s": report[0], "cpu_s": report[1]}
    d["total"] = {"wall_s": total}
    path.write_text(json.dumps(d, indent=2) + "\n")


def update_readme(table: str, marker: str) -> None:
    """The results block between ``<!-- MARKER:start -->`` and ``<!-- MARKER:end -->``: results
    for report/, results-long for report-long/."""
    readme = HERE / "README.md"
    text = readme.read_text()
    start, end = f"<!-- {marker}:start -->", f"<!-- {marker}:end -->"
    if start in text and end in text:
        head, rest = text.split(start, 1)
        _, tail = rest.split(end, 1)
        readme.write_text(f"{head}{start}\n{table}\n{end}{tail}")


if __name__ == "__main__":
    sys.exit(main())
