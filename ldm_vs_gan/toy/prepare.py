"""The toy world's first-use work, in one place: the world's shards, the toy CLIP and VAE stages,
the judge. Each is made once per key and cached (``<cache>/toy``, ``<cache>/stages``); each says
on the console what it makes and where. The trainer calls this (through ``plugins.prepare``)
before it reads data (purpose ``data``) and before it builds the family (``train``); ``eval`` and
``sample`` call it before they rebuild a run (``eval``).
"""

from __future__ import annotations

import sys

from ldm_vs_gan.data.config import name_of

_STAGE_OF = {"clip": "clip", "autoencoder": "vae"}  # component node -> stage family


class ToyPreparer:
    """The ``prepare`` plug-in of the toy world."""

    @staticmethod
    def prepare(cfg, purpose: str) -> None:
        data_cfg = cfg.get("data")
        toy_data = name_of(data_cfg) == "toy"
        if toy_data:
            from ldm_vs_gan.toy.world import ensure_world

            ensure_world(data_cfg)
        if purpose == "data":
            return
        family = _family_class(cfg)
        for node in getattr(family, "components", ()):
            comp = cfg.get(node)
            if comp is not None and comp.get("source") == "toy":
                from ldm_vs_gan.toy.stages import ensure_stage

                ensure_stage(_STAGE_OF[node], comp, data_cfg)
        if toy_data and getattr(family, "generative", False) and _judge_needed(cfg, purpose):
            from ldm_vs_gan.toy.judge import ensure_judge, judge_dir

            if not (judge_dir(data_cfg) / "meta.json").exists():
                print(f"ldm_vs_gan: training the toy judge once, into {judge_dir(data_cfg)}", file=sys.stderr)
            ensure_judge(data_cfg)


def _family_class(cfg):
    model = cfg.get("model")
    target = model.get("_target_") if model is not None else None
    if not target:
        return None
    from hydra.utils import get_class

    return get_class(target)


def _judge_needed(cfg, purpose: str) -> bool:
    """Evaluation judges a toy run; training does when its quick evaluation is on."""
    if purpose != "train":
        return True
    from ldm_vs_gan import schema
    from ldm_vs_gan.training.config import TrainerConfig

    t = schema.read(TrainerConfig, cfg.get("trainer"), "trainer")
    return t.eval_every > 0 and t.eval.n > 0
