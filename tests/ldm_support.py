"""A tiny LDM run through the engine (model=ldm experiment=ldm_tiny, composed as
`python -m ldm_vs_gan.train` does, on the engine tests' stand-in data), shared by the LDM family
and sample-CLI tests."""

import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import open_dict
from test_engine_support import CONFIGS, RES, standin_build_loader, standin_heldout_batch


def tiny_ldm_run(run_dir, *overrides: str):
    """Trains the tiny LDM into ``run_dir`` and returns the run dir (a generator: yield, then undo
    the data stand-in), for module-scoped fixtures."""
    import ldm_vs_gan.data as data
    from ldm_vs_gan.training import run

    mp = pytest.MonkeyPatch()
    mp.setattr(data, "build_loader", standin_build_loader, raising=False)
    mp.setattr(data, "heldout_batch", standin_heldout_batch, raising=False)
    torch.set_num_threads(1)
    with initialize_config_dir(str(CONFIGS), version_base="1.3"):
        cfg = compose(
            "train",
            overrides=[
                "model=ldm",
                "experiment=ldm_tiny",
                "logger=none",
                f"run_dir={run_dir}",
                f"data.resolution={RES}",
                "trainer.eval_every=0",
                *overrides,
            ],
        )
    with open_dict(cfg):
        cfg.data.name = "standin"
    yield run(cfg)
    mp.undo()
