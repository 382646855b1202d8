"""The GPU check: one command that installs the project on a GPU machine from the wheel bundle and
measures it there, each part in its own time box, writing a JSON summary as it goes.

    python benchmarks/gpu_check.py [--out FILE] [--budget-s 480] [--parts a,b,...] [--dry-run]

Parts (run in this order; each one's numbers are described in its module, gpu_parts/part_*.py):

  pytest    the CUDA tests (pytest -m cuda tests/test_cuda.py)
  unet      LDM training throughput, our UNet vs diffusers' at thesis128 and SD-v1 sizes, bf16
  galip     GALIP at the official ViT-B/32 224-px configuration (train and sampling img/s); the
            LDM's sampling latency at 25 DPM-Solver++ steps with guidance
  fid       FID/KID on the device with a random-weights Inception file made here
  torchrun  a one-process torchrun with NCCL through the real loop (tiny LDM)
  pipeline  the toy pipeline end to end as `make train` runs it, then model=galip (gets the
            time that is left)

Each part runs in its own process group with a wall-clock limit (its box, cut to what is left of
--budget-s); a part that fails or runs out of time is recorded as such and the next one starts;
parts that no longer fit are recorded as skipped. The summary goes to --out (default
$OUT/gpu_check.json when $OUT is set, else ./gpu_check.json), the tails of all logs beside it
(gpu_check_logs.txt; the whole logs stay in the scratch folder). --dry-run: on the CPU, tiny
sizes, every part once, no install (the test suite runs it: tests/test_gpu_check.py). How to run
it on the GPU machine: docs/GPU.md.
"""

from __future__ import annotations

import argparse
import datetime
import importlib
import os
import platform
import shutil
import sys
import tempfile
import time
import traceback
from pathlib import Path

from gpu_parts.runner import Context, Recorder, run_part, write_json

REPO = Path(__file__).resolve().parent.parent
# name: default time box in seconds on the GPU (None: whatever the budget has left)
PARTS = {"pytest": 120, "unet": 150, "galip": 120, "fid": 90, "torchrun": 120, "pipeline": None}
DRY_BOX = 180
MIN_BOX = 30  # a part given less than this is skipped (start-up alone takes seconds)


def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, help="summary JSON (default $OUT/gpu_check.json or ./gpu_check.json)")
    ap.add_argument("--budget-s", type=float, default=480, help="total wall-clock budget, install included")
    ap.add_argument("--parts", default=",".join(PARTS), help="comma-separated parts to run, in order")
    ap.add_argument("--dry-run", action="store_true", help="CPU, tiny sizes, no install")
    ap.add_argument(
        "--bundle", type=Path, default=REPO / ".gpu_bundle", help="the wheels of `make gpu-bundle`"
    )
    ap.add_argument("--no-install", action="store_true", help="use this Python as it is")
    ap.add_argument("--work", type=Path, help="scratch folder (default: a new temporary one)")
    ap.add_argument("--cache", type=Path, help="LDM_VS_GAN_CACHE of the parts (default: fresh, in --work)")
    # the parent runs each part as: gpu_check.py --part NAME --result FILE --box S ...
    ap.add_argument("--part", help=argparse.SUPPRESS)
    ap.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--logs", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--box", type=float, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    unknown = [p for p in args.parts.split(",") if p not in PARTS]
    if unknown:
        ap.error(f"unknown parts {unknown}; choose from {', '.join(PARTS)}")
    return args


def part_main(args) -> int:
    """Inside a part's process: run it, recording as it goes; non-zero exit on any error."""
    device = "cpu" if args.dry_run else "cuda"
    ctx = Context(args.dry_run, device, args.work, args.logs, args.box, REPO)
    rec = Recorder(args.result)
    try:
        importlib.import_module(f"gpu_parts.part_{args.part}").run(ctx, rec)
    except Exception:
        traceback.print_exc()
        rec["error"] = traceback.format_exc(limit=3)[-1500:]
        return 1
    return 0


def environment(dry_run: bool) -> dict:
    import torch

    env = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda_runtime": torch.version.cuda,
        "cpus": os.cpu_count(),
        "started": datetime.datetime.now().isoformat(timespec="seconds"),
    }
    if not dry_run and torch.cuda.is_available():
        env["gpu"] = torch.cuda.get_device_name(0)
        env["gpu_memory_gib"] = round(torch.cuda.get_device_properties(0).total_memory / 2**30, 1)
    return env


def part_env(args) -> dict:
    env = dict(os.environ, HF_HUB_OFFLINE="1", WANDB_MODE="offline", PYTHONUNBUFFERED="1")
    paths = [str(REPO), *([str(args.site)] if args.site else []), env.get("PYTHONPATH", "")]
    env["PYTHONPATH"] = os.pathsep.join(paths).rstrip(os.pathsep)
    env["LDM_VS_GAN_CACHE"] = str(args.cache or args.work / "cache")
    if args.dry_run:
        env["OMP_NUM_THREADS"] = "1"  # tiny models: threads buy nothing, and the machine is shared
    return env


def install_step(args, summary, logs) -> None:
    from gpu_parts.install import check_imports, install

    t0 = time.monotonic()
    try:
        with open(logs / "install.log", "w") as log:
            rec = install(args.bundle, REPO, args.work / "site", log)
        args.site = Path(rec["site"]) if "site" in rec else None
        check_imports(REPO, part_env(args))
        summary["install"] = {"status": "ok", **rec}
    except Exception as e:  # the parts still run: the Python may already hold everything
        summary["install"] = {"status": "failed", "seconds": round(time.monotonic() - t0, 1), "error": str(e)}


def collect_logs(logs: Path, dest: Path, tail: int = 100_000) -> None:
    """The tails of all logs in one file: $OUT gives back a few files only."""
    with open(dest, "w") as out:
        for log in sorted(logs.glob("*.log"), key=lambda p: p.stat().st_mtime):
            text = log.read_text(errors="replace")
            out.write(f"===== {log.name} ({len(text)} chars{', tail' if len(text) > tail else ''})\n")
            out.write(text[-tail:] + "\n")


def run_parts(args, summary, out: Path, logs: Path, deadline: float) -> None:
    env = part_env(args)
    for name in args.parts.split(","):
        left = deadline - time.monotonic()
        box = min(DRY_BOX, left) if args.dry_run else min(PARTS[name] or left, left)
        if box < MIN_BOX:
            summary["parts"][name] = {"status": "skipped", "reason": f"{left:.0f} s of the budget left"}
            write_json(out, summary)
            continue
        result = args.work / f"{name}.json"
        cmd = [sys.executable, str(Path(__file__).resolve()), "--part", name, "--result", str(result)]
        cmd += ["--work", str(args.work), "--logs", str(logs), "--box", str(box)]
        cmd += ["--dry-run"] if args.dry_run else []
        summary["parts"][name] = {"status": "running", "time_box_s": round(box)}
        write_json(out, summary)
        summary["parts"][name] = run_part(name, cmd, box, result, logs / f"{name}.log", env)
        write_json(out, summary)
        collect_logs(logs, out.with_name(out.stem + "_logs.txt"))


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.part:
        return part_main(args)
    t0 = time.monotonic()
    default_out = (
        Path(os.environ["OUT"]) / "gpu_check.json" if os.environ.get("OUT") else Path("gpu_check.json")
    )
    out = (args.out or default_out).resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    args.work = (args.work or Path(tempfile.mkdtemp(prefix="gpu_check-"))).resolve()
    args.site = None
    logs = args.work / "logs"
    shutil.rmtree(logs, ignore_errors=True)
    logs.mkdir(parents=True)
    summary = {"dry_run": args.dry_run, "budget_s": args.budget_s, "parts": {}}
    summary["parts"] = {p: {"status": "pending"} for p in args.parts.split(",")}
    if not (args.dry_run or args.no_install):
        install_step(args, summary, logs)
        collect_logs(logs, out.with_name(out.stem + "_logs.txt"))
    summary["environment"] = environment(args.dry_run)
    if not args.dry_run and "gpu" not in summary["environment"]:
        summary["error"] = "no CUDA device visible; on a CPU use --dry-run"
    write_json(out, summary)
    if "error" not in summary:
        run_parts(args, summary, out, logs, t0 + args.budget_s)
    summary["total_seconds"] = round(time.monotonic() - t0, 1)
    summary["all_ok"] = all(p["status"] == "ok" for p in summary["parts"].values())
    write_json(out, summary)
    print(f"[gpu_check] summary: {out}", file=sys.stderr)
    return 0 if summary["all_ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
