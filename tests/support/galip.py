"""A tiny GALIP family (tiny CLIP, 16 px) and a batch for its step and model tests."""

from __future__ import annotations

import torch
from omegaconf import OmegaConf

from ldm_vs_gan.components import build_clip
from ldm_vs_gan.data.batch import Batch
from ldm_vs_gan.galip.family import GALIPFamily
from ldm_vs_gan.training.family import StepContext
from support.engine import CONFIGS

TINY = {
    "z_dim": 8,
    "generator": {
        "bridge_channels": 8,
        "bridge_mid_channels": 4,
        "bridge_blocks": 1,
        "ngf": 8,
        "max_mult": 2,
    },
    "discriminator": {"out_channels": 8, "assessor_channels": 4},
    # Official (no augmentation): the shipped toy default (0.125) would shift every image at random.
    "augment": {"translation": 0.0},
}


def tiny_clip(resolution=16):
    cfg = OmegaConf.load(CONFIGS / "clip" / "tiny.yaml")
    torch.manual_seed(0)
    return build_clip(cfg, data_cfg=OmegaConf.create({"resolution": resolution}))


def tiny_family(resolution=16, **over):
    cfg = OmegaConf.merge(OmegaConf.create(TINY), OmegaConf.create(over))
    torch.manual_seed(0)
    return GALIPFamily(tiny_clip(resolution), cfg, resolution)


def batch(n=4, res=16):
    torch.manual_seed(1)
    caps = ["a small red circle", "a large blue square", "one small green cross", "a yellow triangle"]
    return Batch(torch.rand(n, 3, res, res) * 2 - 1, (caps * n)[:n])


def enter_phase(fam, phase: str, scratch: dict, share: bool = True) -> StepContext:
    """What the engine does at the start of ``phase`` without DDP or accumulation: requires_grad
    on for the phase's networks (and the ones it records a graph for, when sharing), and the
    step's context over ``scratch`` (pass one dict to both phases of a step)."""
    ph = next(p for p in fam.phases() if p.name == phase)
    on = set(ph.networks) | (set(ph.records_graph_for) if share else set())
    for n, m in fam.networks().items():
        m.requires_grad_(n in on)
    return StepContext(nets=fam.networks(), scratch=scratch, share_across_phases=share)
