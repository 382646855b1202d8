"""Checkpoints (full training state) and sampling weights, written so a crash never corrupts them.

A checkpoint is data, not code (loading one never executes anything): tensors, ints, floats, strings,
lists and dicts only, the config as YAML text, loadable with ``torch.load(weights_only=True)``.
Writes are atomic: serialise to a temporary file in the same folder, ``fsync`` it, ``rename`` it
over the target (atomic on POSIX), ``fsync`` the folder. A SIGKILL at any moment leaves either
the old or the new file, never a torn one. Periodic copies are hard links to the new ``last.pt``
(a rename replaces the name, not the inode, so the link keeps that version); keep-last-k.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import pickle
import random
import re
from pathlib import Path

import numpy as np
import torch

from ldm_vs_gan.errors import UserError

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


class UnsafeCheckpointError(UserError):
    """A checkpoint whose unpickling would build Python objects: refused, never passed over."""


def load(path: Path) -> dict:
    """A checkpoint as plain data; a file that is not one is a one-line ``UserError`` naming it."""
    path = Path(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise UserError(f"checkpoint {str(path)!r} not found") from None
    except pickle.UnpicklingError as ex:  # weights_only refused a Python object: never execute it
        what = str(ex).strip().splitlines()[-1] if str(ex).strip() else type(ex).__name__
        if "weights_only" in str(ex) or "Unsupported global" in str(ex):
            what = "it holds Python objects, not only tensors and plain values"
        raise UnsafeCheckpointError(
            f"checkpoint {str(path)!r} cannot be loaded safely: {what[:200]}"
        ) from None
    except Exception as ex:  # truncated, empty, not a torch file
        first = (str(ex).strip().splitlines() or [type(ex).__name__])[0]
        raise UserError(f"checkpoint {str(path)!r} is damaged or not a checkpoint ({first[:160]})") from None
    if not isinstance(state, dict) or "images_seen" not in state:
        raise UserError(f"checkpoint {str(path)!r} is not a training checkpoint of this framework")
    return state


def periodic_copies(ckpt_dir: Path) -> list[Path]:
    """The periodic copies ``images_<N>.pt``, newest first."""
    if not ckpt_dir.is_dir():
        return []
    return sorted((p for p in ckpt_dir.iterdir() if _PERIODIC.match(p.name)), reverse=True)


def load_latest(ckpt_dir: Path) -> tuple[dict, Path, list[str]] | None:
    """The newest readable training state: ``last.pt``, else the newest intact periodic copy.

    Returns ``(state, path, problems)`` (``problems``: one line per unreadable file passed over) or
    None when the folder holds no checkpoint at all. A file refused as unsafe is never passed over:
    someone put it there, and resuming from an older copy would hide that.
    """
    candidates = [p for p in [ckpt_dir / LAST, *periodic_copies(ckpt_dir)] if p.exists()]
    problems: list[str] = []
    for path in candidates:
        try:
            return load(path), path, problems
        except UnsafeCheckpointError:
            raise
        except UserError as ex:
            problems.append(str(ex))
    if problems:
        raise UserError(f"no readable checkpoint in {str(ckpt_dir)!r}: {problems[0]}")
    return None


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


@contextlib.contextmanager
def isolated_rng():
    """Side work (sample grids, quick evaluation, weight export) inside this block cannot move the
    training RNG streams: they are restored on exit, so where the side work happens (or whether
    a run was stopped and resumed there) does not change the training run."""
    state = rng_state()
    try:
        yield
    finally:
        set_rng_state(state)


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
        files[name] = {"file": path.name, "sha256": hashlib.sha256(blob).hexdigest()}
    manifest = dict(manifest, networks={**manifest.get("networks", {})})
    for name, entry in files.items():
        manifest["networks"][name] = {**manifest["networks"].get(name, {}), **entry}
    atomic_write_bytes(weights_dir / "manifest.json", (json.dumps(manifest, indent=2) + "\n").encode())
    return manifest


def read_weights(weights_dir: Path) -> tuple[dict[str, dict[str, torch.Tensor]], dict]:
    """Every network of ``manifest.json``. Each file is read once, its bytes checked against the
    manifest's sha256 and then parsed, so the returned manifest's sha256 are those of the bytes
    loaded; a damaged file or manifest is one ``UserError`` naming it."""
    from ldm_vs_gan.components.weights import read_safetensors, reading

    path = weights_dir / "manifest.json"
    with reading(path, "is not a readable weights manifest"):
        manifest = json.loads(path.read_text())
        files = {n: (weights_dir / e["file"], e.get("sha256")) for n, e in manifest["networks"].items()}
    out = {}
    for name, (file, sha256) in files.items():
        out[name], manifest["networks"][name]["sha256"] = read_safetensors(file, sha256)
    return out, manifest
