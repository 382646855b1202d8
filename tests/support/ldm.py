"""A tiny LDM run through the engine (model=ldm experiment=ldm_tiny, composed as
``python -m ldm_vs_gan.train`` does, on the stand-in data handed to ``run``), shared by the LDM
family and sample-CLI tests."""

import torch
from hydra import compose, initialize_config_dir
from omegaconf import open_dict

from support import standin_data
from support.engine import CONFIGS


def tiny_ldm_run(run_dir, *overrides: str):
    """Trains the tiny LDM into ``run_dir`` and yields the run dir (for module-scoped fixtures)."""
    from ldm_vs_gan.training import run

    torch.set_num_threads(1)
    with initialize_config_dir(str(CONFIGS), version_base="1.3"):
        cfg = compose(
            "train",
            overrides=[
                "model=ldm",
                "experiment=ldm_tiny",
                "logger=none",
                f"run_dir={run_dir}",
                f"data.resolution={standin_data.RES}",
                "trainer.eval_every=0",
                *overrides,
            ],
        )
    with open_dict(cfg):
        cfg.data.name = "standin"
    yield run(cfg, data=standin_data)
