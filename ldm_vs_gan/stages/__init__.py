"""Stages: the families that train the frozen parts the generative families use, for data that
has no pretrained weights (the toy world, or one's own shards offline).

- ``clip.py``: ``model=clip``, a small open_clip CLIP trained contrastively (:class:`CLIPStage`).
- ``vae.py``: ``model=vae``, a small diffusers ``AutoencoderKL`` (:class:`VAEStage`).
- ``config.py``: their ``model`` schemas.

A finished stage run is a weight source: ``clip.source=run`` / ``autoencoder.source=run`` with
its ``path`` (components/sources.py); the toy world trains and caches its own on first use
(``ldm_vs_gan.toy.stages``).
"""
