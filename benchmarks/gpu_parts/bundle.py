"""``make gpu-bundle``: the wheels the GPU machine's Python lacks, downloaded here into one folder.

The GPU machine has no package index. Its Python 3.12 already has torch, torchvision,
torchmetrics, safetensors, matplotlib, tqdm and scipy (:data:`PROVIDED`, with their own
dependencies); everything else the project and its tests import is brought as wheels: the
pinned packages of pyproject.toml except wandb (optional: ``logger=none``), pytest, and their
dependencies at the versions installed in this checkout's ``.venv`` (the set the tests pass
with), for CPython 3.12 on manylinux x86_64. pip, setuptools and wheel come too (running pip
from its wheel where the venv has none; building the editable install offline).
``antlr4-python3-runtime`` (hydra's parser) is published as a source archive only; it is pure
Python, so its wheel is built here.

    .venv/bin/python benchmarks/gpu_parts/bundle.py .gpu_bundle

Writes the wheels, ``requirements.txt`` (the project's pins) and ``closure.txt`` (every pin),
checks that every wheel's dependencies are met by the bundle or by :data:`PROVIDED`, and prints
the folder's size.
"""

from __future__ import annotations

import importlib.metadata as md
import re
import subprocess
import sys
import zipfile
from pathlib import Path

from packaging.requirements import Requirement

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: the copy pip vendors
    from pip._vendor import tomli as tomllib

REPO = Path(__file__).resolve().parents[2]
# On the GPU machine's Python already (and their dependencies, which torch and matplotlib pull in).
PROVIDED = {
    "torch",
    "torchvision",
    "torchmetrics",
    "safetensors",
    "matplotlib",
    "tqdm",
    "scipy",
    "numpy",
    "pillow",
    "triton",
    "sympy",
    "mpmath",
    "networkx",
    "jinja2",
    "markupsafe",
    "lightning-utilities",
    "contourpy",
    "cycler",
    "fonttools",
    "kiwisolver",
    "pyparsing",
    "python-dateutil",
    "six",
}
OPTIONAL = {"wandb"}  # logger=wandb only; its wheels alone would exceed the bundle's size budget
EXTRA_TOP = ["pytest==9.2.0"]  # the GPU check runs the CUDA tests
BUILD_TOOLS = ("pip", "setuptools", "wheel")  # pip from its wheel; the editable install's build
SDIST_ONLY = {"antlr4-python3-runtime"}
TARGET = {  # PEP 508 marker environment of the GPU machine
    "python_version": "3.12",
    "python_full_version": "3.12.0",
    "implementation_name": "cpython",
    "platform_python_implementation": "CPython",
    "sys_platform": "linux",
    "platform_system": "Linux",
    "platform_machine": "x86_64",
    "os_name": "posix",
    "extra": "",
}


def norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _skip(name: str) -> bool:
    n = norm(name)
    return n in PROVIDED or n in OPTIONAL or n.startswith(("nvidia-", "cuda-"))


def top_level() -> list[Requirement]:
    deps = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    return [r for r in map(Requirement, [*deps, *EXTRA_TOP]) if not _skip(r.name)]


def applies(req: Requirement) -> bool:
    return req.marker is None or req.marker.evaluate(TARGET)


def closure(roots: list[Requirement]) -> dict[str, str]:
    """name -> pin (``name==version`` from this environment, or the requirement itself when the
    package is not installed here) for ``roots`` and everything they need on the target."""
    pins: dict[str, str] = {}
    todo = list(roots)
    while todo:
        req = todo.pop()
        n = norm(req.name)
        if n in pins or _skip(n) or not applies(req):
            continue
        try:
            version = md.version(req.name)
        except md.PackageNotFoundError:
            pins[n] = str(Requirement(f"{req.name}{req.specifier}"))
            continue
        pins[n] = f"{n}=={version}"
        todo += [r for r in map(Requirement, md.requires(req.name) or []) if applies(r)]
    return pins


def pip(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "pip", *args], check=True)


def download(pins: dict[str, str], out: Path) -> None:
    for old in out.glob("*.whl"):  # two versions of one package would stop the whole install
        old.unlink()
    binary = [p for n, p in sorted(pins.items()) if n not in SDIST_ONLY]
    # pip matches a manylinux tag exactly: name each glibc level a wheel may be built for
    levels = ("manylinux_2_28", "manylinux_2_27", "manylinux_2_17", "manylinux2014", "manylinux1")
    platform = [a for lvl in levels for a in ("--platform", f"{lvl}_x86_64")]
    pip(
        "download", "--only-binary=:all:", "--python-version", "3.12", "--implementation", "cp",
        "--abi", "cp312", *platform, "--no-deps", "-d", str(out), *binary, *BUILD_TOOLS,
    )  # fmt: skip
    for n in sorted(SDIST_ONLY & set(pins)):  # pure Python: a wheel built here installs anywhere
        pip("wheel", "--no-deps", "-w", str(out), pins[n])


def wheel_requires(path: Path) -> tuple[str, list[Requirement]]:
    """(normalised name, requirements that apply on the target) of a wheel file."""
    with zipfile.ZipFile(path) as z:
        meta = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))
        text = z.read(meta).decode()
    name = norm(re.search(r"^Name: (.+)$", text, re.M).group(1).strip())
    reqs = [Requirement(v) for v in re.findall(r"^Requires-Dist: (.+)$", text, re.M)]
    return name, [r for r in reqs if applies(r)]


def check(out: Path) -> list[str]:
    """Requirements of the bundled wheels met neither by the bundle nor by :data:`PROVIDED`."""
    wheels = dict(wheel_requires(p) for p in sorted(out.glob("*.whl")))
    missing = []
    for name, reqs in wheels.items():
        for r in reqs:
            if not _skip(r.name) and norm(r.name) not in wheels:
                missing.append(f"{name} needs {r}")
    return missing


def main() -> None:
    out = Path(sys.argv[1] if len(sys.argv) > 1 else REPO / ".gpu_bundle").resolve()
    out.mkdir(parents=True, exist_ok=True)
    top = top_level()
    pins = closure(top)
    download(pins, out)
    # what the project asks for (the install keeps a machine's own version that satisfies it)
    (out / "requirements.txt").write_text("".join(pins[norm(r.name)] + "\n" for r in top))
    (out / "closure.txt").write_text("".join(p + "\n" for _, p in sorted(pins.items())))
    missing = check(out)
    size = sum(p.stat().st_size for p in out.iterdir())
    print(f"{len(list(out.glob('*.whl')))} wheels in {out}, {size / 2**20:.1f} MiB")
    if missing:
        raise SystemExit("unmet on the GPU machine: " + "; ".join(missing))


if __name__ == "__main__":
    main()
