"""Finding weights on THIS machine before any library is asked to fetch them.

open_clip and diffusers, asked for a hub file that is not cached, either retry for 20-46 s
(without ``HF_HUB_OFFLINE``) or fail with a misleading message ("does not appear to have a file
named config.json"). So every source is checked here first, locally, in milliseconds, and an
absent weight becomes one :class:`~ldm_vs_gan.errors.MissingWeightsError` that names the config
key, what to provide, and how to get it on a machine with internet (offline is the default).

Files we parse ourselves are read once (:func:`read_safetensors`, :func:`read_torch`): the bytes are
hashed, checked against a recorded sha256 when there is one, then parsed, so a recorded hash is
that of what was loaded; an unreadable file is one :class:`UserError` naming it.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
from pathlib import Path

import torch

from ldm_vs_gan.errors import MissingWeightsError, UserError


def downloads_allowed(cfg_flag: bool) -> bool:
    """A download is attempted only if the config allows it AND the environment is not offline
    (``HF_HUB_OFFLINE`` / ``TRANSFORMERS_OFFLINE`` unset or 0)."""
    offline = any(
        os.environ.get(k, "0").strip().lower() not in ("", "0", "false", "no")
        for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    )
    return bool(cfg_flag) and not offline


def hf_cached(repo_id: str, filename: str, cache_dir: str | None = None) -> str | None:
    """Path of ``repo_id/filename`` in the local Hugging Face cache, or None (no network)."""
    from huggingface_hub import try_to_load_from_cache

    try:
        hit = try_to_load_from_cache(repo_id, filename, cache_dir=cache_dir)
    except Exception:  # malformed repo id etc.: treat as absent, the caller's message explains
        return None
    return hit if isinstance(hit, str) and os.path.isfile(hit) else None


def existing_path(path, key: str, what: str, how: str) -> Path:
    """``Path(path)`` if it exists, else the one-line error for config ``key``."""
    if path in (None, ""):
        raise MissingWeightsError(f"{key} is not set: give {what}. {how}")
    p = Path(str(path)).expanduser()
    if not p.exists():
        raise MissingWeightsError(f"{key}={str(path)!r} does not exist on this machine: give {what}. {how}")
    return p


def one_line(ex: BaseException, n: int = 160) -> str:
    """``Type: message`` of an exception on one line (library messages span several)."""
    return " ".join(f"{type(ex).__name__}: {ex}".split())[:n]


def _label(path, key: str | None) -> str:
    return f"{key}={str(path)!r}" if key else str(path)


@contextlib.contextmanager
def reading(path, what: str, key: str | None = None):
    """Any error inside the block becomes one :class:`UserError`: ``<path> <what> (<why>)``."""
    try:
        yield
    except UserError:
        raise
    except Exception as ex:  # damaged, truncated, empty, not that format: say which file
        raise UserError(f"{_label(path, key)} {what} ({one_line(ex)})") from None


def read_bytes(path, key: str | None = None) -> tuple[bytes, str]:
    """(bytes, sha256 of them): read once, so a hash recorded anywhere is that of what was parsed."""
    with reading(path, "cannot be read", key):
        data = Path(path).read_bytes()
    return data, hashlib.sha256(data).hexdigest()


def read_safetensors(path, sha256: str | None = None, key: str | None = None):
    """(tensors, sha256 of the bytes read) of a ``.safetensors`` file; ``sha256``, when given (a
    manifest's record), must match those bytes, else one :class:`UserError` naming the file."""
    from safetensors.torch import load

    data, digest = read_bytes(path, key)
    if sha256 and digest != sha256:
        raise UserError(
            f"{_label(path, key)} is damaged or was changed after it was written: its sha256 is "
            f"{digest[:12]}..., the manifest records {sha256[:12]}...; restore it from a copy"
        )
    with reading(path, "is not a readable safetensors file", key):
        return load(data), digest


def read_torch(path, key: str | None = None):
    """(object, sha256 of the bytes read) of a torch file, loaded ``weights_only`` (data, not code)."""
    data, digest = read_bytes(path, key)
    with reading(path, "is not a readable torch file of tensors", key):
        return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True), digest


def load_state_dict_file(path: str | os.PathLike, key: str | None = None):
    """(state dict, sha256 of the bytes read) from ``.safetensors`` or a torch file. Unwraps
    ``{"state_dict": ...}`` and strips a DDP ``module.`` prefix."""
    if str(path).endswith(".safetensors"):
        sd, digest = read_safetensors(path, key=key)
    else:
        sd, digest = read_torch(path, key)
        if isinstance(sd, dict) and "state_dict" in sd and isinstance(sd["state_dict"], dict):
            sd = sd["state_dict"]
    if not isinstance(sd, dict):
        raise MissingWeightsError(f"{_label(path, key)} holds no state dict (got {type(sd).__name__})")
    if sd and all(k.startswith("module.") for k in sd):
        sd = {k[len("module.") :]: v for k, v in sd.items()}
    return sd, digest
