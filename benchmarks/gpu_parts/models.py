"""Families with random weights at published sizes, for timing (speed does not depend on weights):
GALIP as benchmarks/bench_galip.py builds it, and an LDM on a random CLIP ViT-B/32 and a random
AutoencoderKL of Stable Diffusion's architecture (or their tiny test sizes in a dry run)."""

from __future__ import annotations

from pathlib import Path

from omegaconf import OmegaConf

REPO = Path(__file__).resolve().parents[2]
SD_VAE = {"channels": [128, 256, 512, 512], "factor": 8, "layers_per_block": 2, "latent_channels": 4}


def galip(dry_run: bool):
    """(GALIP family, resolution): official widths on ViT-B/32 at 224 px; the toy sizes at 32 px."""
    from bench_galip import build

    return build("toy" if dry_run else "vit_b32")


def random_clip(dry_run: bool, resolution: int):
    from ldm_vs_gan.components import FrozenCLIP
    from ldm_vs_gan.components.clip import bpe_tokenizer, build_open_clip

    if dry_run:
        arch = OmegaConf.to_container(OmegaConf.load(REPO / "configs/clip/tiny.yaml").arch)
        vision = arch["vision_cfg"]
        vision["image_size"] = resolution
        vision["patch_size"] = resolution // vision.pop("grid")
    else:
        import open_clip

        arch = open_clip.get_model_config("ViT-B-32")
    return FrozenCLIP(build_open_clip(arch), bpe_tokenizer(arch["text_cfg"]["context_length"]))


def random_autoencoder(dry_run: bool, resolution: int):
    from ldm_vs_gan.components.autoencoder import FrozenAutoencoder, build_autoencoder_kl

    if dry_run:
        arch = OmegaConf.to_container(OmegaConf.load(REPO / "configs/autoencoder/tiny.yaml").arch)
        return FrozenAutoencoder(build_autoencoder_kl(arch, resolution))
    return FrozenAutoencoder(build_autoencoder_kl(SD_VAE, resolution, scaling_factor=0.18215))


def ldm(size: str, resolution: int, dry_run: bool):
    """An LDM family with UNet ``size`` (cross-attention to the CLIP's tokens, as SD v1)."""
    from ldm_vs_gan.ldm.family import LDMFamily

    clip = random_clip(dry_run, resolution)
    ae = random_autoencoder(dry_run, resolution)
    cfg = {"unet": {"size": size}, "conditioning": {"pooled": False}}
    return LDMFamily(clip, ae, cfg, resolution)
