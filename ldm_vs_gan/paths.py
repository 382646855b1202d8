"""Where things live on disk: the cache (toy world, toy judge, toy CLIP/VAE, reference statistics).

The cache root is ``$LDM_VS_GAN_CACHE`` when set, else ``~/.cache/ldm_vs_gan``. Configs may also
name a folder explicitly (``data.cache_dir``, ...); this is only the default. Nothing is ever
written into the repository tree except ``runs/`` (git-ignored).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path


def cache_root() -> Path:
    root = os.environ.get("LDM_VS_GAN_CACHE")
    return Path(root).expanduser() if root else Path.home() / ".cache" / "ldm_vs_gan"


def cache_dir(*parts: str, root: str | os.PathLike | None = None) -> Path:
    """A sub-folder of the cache (created). ``root`` overrides :func:`cache_root` when not None."""
    base = Path(root).expanduser() if root else cache_root()
    path = base.joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path


def params_key(params: dict, length: int = 12) -> str:
    """A short stable hash of a JSON-able dict: cached artefacts are keyed by what made them, so
    they are regenerated exactly when their parameters change."""
    blob = json.dumps(params, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:length]


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()
