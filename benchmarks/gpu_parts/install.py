"""Installing the project on the GPU machine from the wheel bundle, offline.

A bundled wheel is installed (``--no-deps``: the bundle is the dependency closure, checked when it
was made) when this Python lacks its distribution or has a version that a requirement refuses:
the project's pins (the bundle's ``requirements.txt``) or a bundled wheel's own requirements.
What the machine has and satisfies stays as it is. Then the project itself, editable and
``--no-deps``. pip runs from the bundle's pip wheel where the venv has none; where the venv
cannot be written, the wheels go to a folder of the check instead (``--target``), which the
parts get on ``PYTHONPATH``, as they get the checkout itself in any case.
"""

from __future__ import annotations

import importlib.metadata as md
import re
import subprocess
import sys
import time
import zipfile
from pathlib import Path

from packaging.requirements import Requirement

IMPORTS = ("hydra", "omegaconf", "open_clip", "diffusers", "webdataset", "torch_fidelity", "pytest")


def norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def installed_version(dist: str) -> str | None:
    try:
        return md.version(dist)
    except md.PackageNotFoundError:
        return None


def requirements(bundle: Path, wheels: list[Path]) -> list[Requirement]:
    """The project's pins and every bundled wheel's requirements that apply to this Python."""
    lines = (bundle / "requirements.txt").read_text().splitlines()
    reqs = [Requirement(ln) for ln in lines if ln.strip() and not ln.startswith("#")]
    for w in wheels:
        with zipfile.ZipFile(w) as z:
            meta = z.read(next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))).decode()
        reqs += [Requirement(r) for r in re.findall(r"^Requires-Dist: (.+)$", meta, re.M)]
    return [r for r in reqs if r.marker is None or r.marker.evaluate({"extra": ""})]


def to_install(bundle: Path) -> tuple[list[Path], int]:
    """(wheels whose distribution is missing or refused here, number already satisfied)."""
    wheels = sorted(bundle.glob("*.whl"))
    reqs = requirements(bundle, wheels)
    chosen = []
    for w in wheels:
        name = norm(w.name.split("-")[0])  # wheel names write "-" as "_"
        have = installed_version(name)
        refused = have is not None and any(
            norm(r.name) == name and not r.specifier.contains(have, prereleases=True) for r in reqs
        )
        if have is None or refused:
            chosen.append(w)
    return chosen, len(wheels) - len(chosen)


def pip_command(bundle: Path) -> list[str]:
    probe = subprocess.run([sys.executable, "-m", "pip", "--version"], capture_output=True)
    if probe.returncode == 0:
        return [sys.executable, "-m", "pip"]
    wheel = sorted(bundle.glob("pip-*.whl"))
    if not wheel:
        raise RuntimeError(f"this Python has no pip and {bundle} has no pip wheel")
    return [sys.executable, str(wheel[-1] / "pip")]  # pip runs from its own wheel


def pip_install(pip: list[str], args: list[str], log) -> None:
    cmd = [*pip, "install", "--no-index", "--no-deps", "--disable-pip-version-check", *args]
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    log.write(f"$ {' '.join(cmd)}\n{proc.stdout}\n")
    if proc.returncode:
        raise RuntimeError(f"pip install failed: {proc.stdout.strip()[-1500:]}")


def install(bundle: Path, repo: Path, site: Path, log) -> dict:
    """Install what is missing; returns the ``install`` record of the summary (``site`` set when
    the wheels went to ``site`` instead of this Python's environment)."""
    t0 = time.perf_counter()
    bundle = bundle.resolve()
    if not (bundle / "requirements.txt").is_file():
        raise RuntimeError(f"no wheel bundle at {bundle}: run `make gpu-bundle` here and carry .gpu_bundle")
    pip = pip_command(bundle)
    chosen, present = to_install(bundle)
    rec = {"pip": " ".join(pip[1:]), "installed": [w.name for w in chosen], "already_satisfied": present}
    if chosen:
        try:
            pip_install(pip, list(map(str, chosen)), log)
        except RuntimeError:  # e.g. a read-only environment: a folder of our own instead
            pip_install(pip, ["--target", str(site), *map(str, chosen)], log)
            rec["site"] = str(site)
    try:
        pip_install(pip, ["--find-links", str(bundle), "-e", str(repo)], log)
        rec["project"] = "editable install"
    except RuntimeError as e:
        rec["project"] = f"on PYTHONPATH (the editable install failed: {str(e)[-300:]})"
    rec["seconds"] = round(time.perf_counter() - t0, 1)
    return rec


def check_imports(repo: Path, env: dict) -> None:
    """Every package the parts import, in a fresh process with the parts' environment."""
    probe = f"import {', '.join(IMPORTS)}; import ldm_vs_gan"
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=repo, env=env)
    if proc.returncode:
        raise RuntimeError(f"imports fail after the install: {proc.stderr.strip()[-1500:]}")
