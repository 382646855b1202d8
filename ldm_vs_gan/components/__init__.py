"""Frozen building blocks shared by the families (docs/CONTRACTS.md, "Components").

- :func:`build_clip` -> :class:`FrozenCLIP` (open_clip: text tokens/pooled/mask, image embedding,
  ViT block access for GALIP).
- :func:`build_autoencoder` -> :class:`FrozenAutoencoder` (diffusers ``AutoencoderKL``).

``source`` selects where weights come from (``sources.py``; a plug-in adds its own, as the toy
world adds ``toy``). :func:`check_available` locates every pretrained weight a family needs
before any component is built.
"""

from ldm_vs_gan.components.autoencoder import FrozenAutoencoder
from ldm_vs_gan.components.clip import FrozenCLIP, TextFeatures
from ldm_vs_gan.components.sources import (
    autoencoder_from_run,
    build_autoencoder,
    build_clip,
    check_available,
    clip_from_run,
)

__all__ = [
    "FrozenAutoencoder",
    "FrozenCLIP",
    "TextFeatures",
    "autoencoder_from_run",
    "build_autoencoder",
    "build_clip",
    "check_available",
    "clip_from_run",
]
