"""Precomputed shards for the LDM (``python -m ldm_vs_gan.precompute``): what a sample holds, the
``meta.json`` that names what made them, and the start-up check that they fit the run.

Large diffusion stacks encode their data set once and train from the stored encodings, so no step
runs the frozen encoders. Each sample here holds, as ``NAME.npy`` members, the autoencoder
posterior's mean and standard deviation, already shifted and scaled as ``encode`` does, so
``mean + std * eps`` is the scaled latent the on-the-fly path samples (``autoencoder.latent:
sample``, the LDM paper's setting) and ``mean`` its mode; and the caption's token features, mask
and pooled embedding at ``clip.token_layer``, as ``FrozenCLIP.encode_text`` gives them.

``meta.json``, beside the train shards, names what made them: the weights' fingerprints (sha256
of the tensors, whatever their source), the token layer and context length, the scaling, the
resolution. A run whose frozen components or resolution differ would train on features it never
sees at sampling time: it is refused at start-up with one line naming the key.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch

from ldm_vs_gan.errors import ConfigError, UserError

FORMAT = 1
LATENT = ("latent_mean", "latent_std")  # (c, h, w) float32 each
TEXT = ("text_tokens", "text_mask", "text_pooled")  # (L, D) float32, (L,) bool, (E,) float32
META = "meta.json"


def fingerprint(module: torch.nn.Module) -> str:
    """sha256 of every tensor of ``module.state_dict()`` (name, dtype, shape, bytes): the same
    weights give the same value whichever file or source they came from."""
    h = hashlib.sha256()
    for name, t in sorted(module.state_dict().items()):
        t = t.detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def identity(clip, ae, resolution: int) -> dict:
    """What the shards' tensors depend on, in the form ``meta.json`` records and :func:`check`
    compares (besides the data itself)."""
    return {
        "resolution": int(resolution),
        "clip": {
            "sha256": fingerprint(clip),
            "token_layer": clip.check_token_layer(clip.token_layer),
            "context_length": clip.context_length,
        },
        "autoencoder": {
            "sha256": fingerprint(ae),
            "scaling_factor": ae.scaling_factor,
            "shift_factor": ae.shift_factor,
        },
    }


def meta_path(data_cfg) -> Path:
    """``meta.json`` beside the first train shard of ``data_cfg`` (local shards only)."""
    from ldm_vs_gan.data import config
    from ldm_vs_gan.data.shards import expand_shards, is_remote

    c = config.read(data_cfg)
    paths = expand_shards(c.shards) if c.shards else []
    if not paths:
        raise UserError(f"data.shards={c.shards!r}: no shard file found (data.precomputed=true)")
    if is_remote(paths[0]):
        raise ConfigError(
            f"data.precomputed=true needs local data.shards (meta.json is read beside them): {paths[0]}"
        )
    return Path(paths[0]).parent / META


def read_meta(path: Path) -> dict:
    if not path.is_file():
        raise UserError(
            f"data.precomputed=true but {path} is missing: write the shards with "
            f"python -m ldm_vs_gan.precompute ... out={path.parent} (meta.json is written last)"
        )
    try:
        meta = json.loads(path.read_text())
        meta["identity"]["clip"]
    except (ValueError, KeyError, TypeError):
        raise UserError(f"{path} is not a precompute meta.json: write the shards again") from None
    if meta.get("format") != FORMAT:
        raise UserError(
            f"{path}: format {meta.get('format')!r}, this version reads {FORMAT}: precompute again"
        )
    return meta


def check(data_cfg, clip, ae) -> None:
    """One line naming the first key whose value differs from what made the shards."""
    from ldm_vs_gan.data import config

    path = meta_path(data_cfg)
    made = read_meta(path)["identity"]
    now = identity(clip, ae, config.read(data_cfg).resolution)
    again = f"precompute again with this run's settings (meta.json: {path})"
    if made["resolution"] != now["resolution"]:
        raise ConfigError(
            f"data.resolution={now['resolution']} but the shards hold {made['resolution']} px; {again}"
        )
    for node in ("clip", "autoencoder"):
        for key, value in now[node].items():
            was = made[node].get(key)
            if was == value:
                continue
            if key == "sha256":
                raise ConfigError(
                    f"{node}: its weights (sha256 {value[:12]}) are not those that made the precomputed "
                    f"shards (sha256 {str(was)[:12]}); {again}"
                )
            raise ConfigError(f"{node}.{key}: {value!r} here, {was!r} in the precomputed shards; {again}")
