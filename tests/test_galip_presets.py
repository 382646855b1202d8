"""The faithful presets (experiment=galip_coco, galip_thesis) compose to the official GALIP
objective and optimiser whatever the toy defaults of configs/model/galip.yaml are."""

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf
from test_engine_support import CONFIGS

OFFICIAL_LOSS = {
    "clip_weight": 4.0,
    "magp_k": 2.0,
    "magp_p": 6.0,
    "mismatch_weight": 0.5,
    "mode_seeking": 0.0,
}
OFFICIAL_OPTIM = {"lr_g": 1e-4, "lr_d": 4e-4, "betas": [0.0, 0.9], "grad_clip_g": None, "grad_clip_d": None}


@pytest.mark.parametrize("preset", ["galip_coco", "galip_thesis"])
def test_faithful_presets_use_the_official_objective(preset):
    with initialize_config_dir(str(CONFIGS), version_base="1.3"):
        cfg = compose("train", overrides=["model=galip", f"experiment={preset}"])
    m = OmegaConf.to_container(cfg.model, resolve=False)
    assert {k: m["loss"][k] for k in OFFICIAL_LOSS} == OFFICIAL_LOSS
    assert {k: m["optim"][k] for k in OFFICIAL_OPTIM} == OFFICIAL_OPTIM
    assert m["ema"] is False and m["share_fake"] is True and m["sampling"]["truncation"] is None
    assert m["augment"]["translation"] == 0.0 and m["z_dim"] == 100
