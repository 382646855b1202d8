"""Checkpoints (full training state) and sampling weights, written so a crash never corrupts them.

A checkpoint is data, not code (DESIGN.md "Rules of the house"): tensors, ints, floats, strings,
lists and dicts only, the config as YAML text, loadable with ``torch.load(weights_only=True)``.
Writes are atomic: serialise to a temporary file in the same folder, ``fsync`` it, ``rename`` it
over the target (atomic on POSIX), ``fsync`` the folder. A SIGKILL at any moment leaves either
the old or the new file, never a torn one. Periodic copies are hard links to the new ``last.pt``
(a rename replaces the name, not the inode, so the link keeps that version); keep-last-k.
"""

from __future__ import annotations

import io
import json
import os
import random
import re
from pathlib import Path

import numpy as np
import torch

from ldm_vs_gan.paths import sha256_file

FORMAT = 1
LAST = "last.pt"
_PERIODIC = re.compile(r"^images_(\d+)\.pt$")


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    _fsync_dir(path.parent)


def atomic_torch_save(obj, path: Path) -> None:
    buf = io.BytesIO()
    torch.save(obj, buf)
    atomic_write_bytes(path, buf.getvalue())


def load(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


def save_with_copies(state: dict, ckpt_dir: Path, images_seen: int, keep: int, periodic: bool) -> Path:
    """Write ``last.pt``; when ``periodic`` also keep ``images_<N>.pt`` (the ``keep`` newest)."""
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    last = ckpt_dir / LAST
    atomic_torch_save(state, last)
    # stale temp files of killed writers (other pids) are garbage: remove them
    for stale in ckpt_dir.glob(".*.tmp*"):
        stale.unlink(missing_ok=True)
    if periodic and keep > 0:
        copy = ckpt_dir / f"images_{images_seen:012d}.pt"
        copy.unlink(missing_ok=True)
        try:
            os.link(last, copy)
        except OSError:  # filesystems without hard links
            atomic_write_bytes(copy, last.read_bytes())
        copies = sorted(p for p in ckpt_dir.iterdir() if _PERIODIC.match(p.name))
        for old in copies[:-keep]:
            old.unlink(missing_ok=True)
    return last


# ---- RNG streams (torch, CUDA, numpy, python), as weights_only-loadable values ----------------


def rng_state() -> dict:
    np_state = np.random.get_state()
    py_version, py_internal, py_gauss = random.getstate()
    state = {
        "torch": torch.get_rng_state(),
        "numpy_keys": torch.from_numpy(np_state[1].astype(np.int64)),
        "numpy_pos": int(np_state[2]),
        "numpy_has_gauss": int(np_state[3]),
        "numpy_gauss": float(np_state[4]),
        "python_version": int(py_version),
        "python_internal": torch.tensor(py_internal, dtype=torch.int64),
        "python_gauss": py_gauss,
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(
        (
            "MT19937",
            state["numpy_keys"].numpy().astype(np.uint32),
            state["numpy_pos"],
            state["numpy_has_gauss"],
            state["numpy_gauss"],
        )
    )
    random.setstate(
        (
            state["python_version"],
            tuple(int(v) for v in state["python_internal"].tolist()),
            state["python_gauss"],
        )
    )
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def seed_all(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


# ---- sampling weights (safetensors + manifest) -------------------------------------------------


def export_weights(weights_dir: Path, tensors: dict[str, dict[str, torch.Tensor]], manifest: dict) -> dict:
    """Write ``<network>.safetensors`` for each network, then ``manifest.json`` (last, atomically:
    a reader that finds the manifest finds every file it lists)."""
    from safetensors.torch import save

    weights_dir.mkdir(parents=True, exist_ok=True)
    files = {}
    for name, sd in tensors.items():
        blob = save({k: v.detach().to("cpu").contiguous().clone() for k, v in sd.items()})
        path = weights_dir / f"{name}.safetensors"
        atomic_write_bytes(path, blob)
        files[name] = {"file": path.name, "sha256": sha256_file(path)}
    manifest = dict(manifest, networks={**manifest.get("networks", {})})
    for name, entry in files.items():
        manifest["networks"][name] = {**manifest["networks"].get(name, {}), **entry}
    atomic_write_bytes(weights_dir / "manifest.json", (json.dumps(manifest, indent=2) + "\n").encode())
    return manifest


def read_weights(weights_dir: Path) -> tuple[dict[str, dict[str, torch.Tensor]], dict]:
    from safetensors.torch import load_file

    manifest = json.loads((weights_dir / "manifest.json").read_text())
    out = {name: load_file(weights_dir / e["file"]) for name, e in manifest["networks"].items()}
    return out, manifest
