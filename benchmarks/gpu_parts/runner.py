"""Time boxes and the JSON summary of the GPU check.

Each part runs in its own process (``gpu_check.py --part NAME``) with a wall-clock limit, in its
own process group, so a hang, a crash or an out-of-memory in one part is killed with everything
it started and the next part starts on a clean device. A part writes its numbers to a result
file as it measures them (:class:`Recorder`), so a part stopped at its limit still reports what
it finished. The summary is rewritten after every part.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path


def write_json(path: Path, obj) -> None:
    """Atomic: a reader (or a kill) never sees half a file."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, default=str) + "\n")
    os.replace(tmp, path)


class Recorder(dict):
    """A part's numbers, written to ``path`` at every assignment."""

    def __init__(self, path: Path):
        super().__init__()
        self.path = path

    def __setitem__(self, key, value) -> None:
        super().__setitem__(key, value)
        write_json(self.path, dict(self))

    def update(self, *args, **kw) -> None:
        super().update(*args, **kw)
        write_json(self.path, dict(self))


@dataclass
class Context:
    """What a part needs to know (passed on its command line)."""

    dry_run: bool
    device: str  # "cuda" or "cpu"
    work: Path  # scratch folder of the whole check (runs, caches, weights files)
    logs: Path  # where sub-processes write their logs
    box_s: float  # this part's wall-clock limit: a part sizes its loops and sub-limits by it
    repo: Path

    @property
    def deadline(self) -> float:
        return self.start + self.box_s

    def __post_init__(self) -> None:
        self.start = time.monotonic()

    def left(self) -> float:
        return self.deadline - time.monotonic()


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def run_part(name: str, cmd: list[str], box_s: float, result: Path, log: Path, env: dict) -> dict:
    """Run one part's process within ``box_s``; its record: status (ok | failed | timeout),
    seconds, the numbers it wrote, and the tail of its log when it did not finish well."""
    t0 = time.monotonic()
    result.unlink(missing_ok=True)
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        try:
            rc = proc.wait(timeout=box_s)
            status = "ok" if rc == 0 else "failed"
        except subprocess.TimeoutExpired:
            status, rc = "timeout", None
        finally:
            _kill_group(proc)  # whatever the part started (trainers, torchrun workers) goes too
            proc.wait()
    numbers = json.loads(result.read_text()) if result.exists() else {}
    rec = {**numbers, "status": status, "seconds": round(time.monotonic() - t0, 1)}
    if status == "timeout":
        rec["time_box_s"] = round(box_s, 1)
    if status != "ok":
        rec["exit_code"] = rc
        rec["log_tail"] = log.read_text(errors="replace")[-2500:]
    print(f"[gpu_check] {name}: {status} in {rec['seconds']} s", file=sys.stderr, flush=True)
    return rec


def run_logged(cmd: list[str], log: Path, timeout: float, cwd: Path, env: dict | None = None) -> dict:
    """A sub-process of a part (a training, torchrun) with its output in ``log``, killed with its
    own children at ``timeout``: {returncode (None on timeout), seconds}."""
    t0 = time.monotonic()
    with open(log, "w") as out:
        proc = subprocess.Popen(
            cmd, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            rc = proc.wait(timeout=max(timeout, 1))
        except subprocess.TimeoutExpired:
            rc = None
        finally:
            _kill_group(proc)
            proc.wait()
    return {"returncode": rc, "seconds": round(time.monotonic() - t0, 1)}
