"""ldm_vs_gan: latent diffusion vs a CLIP-conditioned GAN (GALIP), under equal conditions.

Rooms (see README.md "Layout"): ``data`` (shards, toy world, COCO, folders), ``components``
(frozen CLIP and AutoencoderKL), ``ldm`` and ``galip`` (the two families), ``training`` (the one
loop), ``metrics`` (evaluation). The families know nothing about DDP, autocast or checkpoints;
the loop knows nothing about diffusion or adversarial training.
"""

__version__ = "0.1.0"
