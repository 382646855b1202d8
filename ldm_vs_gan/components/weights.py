"""Finding weights on THIS machine before any library is asked to fetch them.

open_clip and diffusers, asked for a hub file that is not cached, either retry for 20-46 s
(without ``HF_HUB_OFFLINE``) or fail with a misleading message ("does not appear to have a file
named config.json"). So every source is checked here first, locally, in milliseconds, and an
absent weight becomes one :class:`~ldm_vs_gan.errors.MissingWeightsError` that names the config
key, what to provide, and how to get it on a machine with internet (DESIGN.md, "Offline").
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from ldm_vs_gan.errors import MissingWeightsError


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


def load_state_dict_file(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """A state dict from ``.safetensors`` or a torch file (``weights_only=True``: checkpoints are
    data, not code). Unwraps ``{"state_dict": ...}`` and strips a DDP ``module.`` prefix."""
    path = str(path)
    if path.endswith(".safetensors"):
        from safetensors.torch import load_file

        sd = load_file(path)
    else:
        sd = torch.load(path, map_location="cpu", weights_only=True)
        if isinstance(sd, dict) and "state_dict" in sd and isinstance(sd["state_dict"], dict):
            sd = sd["state_dict"]
    if not isinstance(sd, dict):
        raise MissingWeightsError(f"{path} holds no state dict (got {type(sd).__name__})")
    if sd and all(k.startswith("module.") for k in sd):
        sd = {k[len("module.") :]: v for k, v in sd.items()}
    return sd
