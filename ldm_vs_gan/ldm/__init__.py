"""The latent diffusion family, from scratch (diffusers provides only the frozen autoencoder).

- ``unet.py``: the denoising UNet and its size registry (tiny, toy, thesis128, sd).
- ``attention.py``: spatial transformer blocks (self + cross attention, GEGLU).
- ``schedule.py``: VP noise schedules (scaled_linear, linear, cosine, zero terminal SNR) and the
  eps / v / x0 conversions.
- ``objective.py``: timestep sampling, targets, MSE/L1, min-SNR-gamma, offset noise.
- ``samplers.py``: DDPM, DDIM, Euler, DPM-Solver++ 2M (Karras sigmas options) over a denoiser.
- ``guidance.py``: classifier-free guidance (one batched forward) and per-image seeded noise.
- ``precomputed.py``: shards of stored latents and text features (``python -m
  ldm_vs_gan.precompute``): their ``meta.json`` and the check that they fit a run.
- ``family.py``: ``LDMFamily`` (phase ``denoiser``), what the training loop and ``sample.py`` use.
"""
