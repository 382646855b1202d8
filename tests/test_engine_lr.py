"""The learning-rate schedule: linear warm-up in images seen, then constant or half-cosine."""

import math

import pytest

from ldm_vs_gan.training.optim import lr_factor


def test_constant_after_warmup():
    assert lr_factor(50, 100, "none", 1000, 0.0) == pytest.approx(0.5)
    assert lr_factor(100, 100, "none", 1000, 0.0) == 1.0
    assert lr_factor(1000, 100, "none", 1000, 0.0) == 1.0


def test_cosine_decays_from_peak_to_min_ratio():
    assert lr_factor(100, 100, "cosine", 1100, 0.1) == pytest.approx(1.0)
    # half-way through the decay: min + (1 - min) * 0.5
    assert lr_factor(600, 100, "cosine", 1100, 0.1) == pytest.approx(0.1 + 0.9 * 0.5)
    assert lr_factor(1100, 100, "cosine", 1100, 0.1) == pytest.approx(0.1)
    assert lr_factor(5000, 100, "cosine", 1100, 0.1) == pytest.approx(0.1)  # past the budget: stays at min
    # monotone non-increasing after warm-up
    xs = [lr_factor(i, 100, "cosine", 1100, 0.0) for i in range(100, 1101, 50)]
    assert all(a >= b for a, b in zip(xs, xs[1:]))
    assert lr_factor(350, 100, "cosine", 1100, 0.0) == pytest.approx(0.5 * (1 + math.cos(math.pi * 0.25)))


def test_bad_decay_is_a_one_line_config_error():
    from omegaconf import OmegaConf

    from ldm_vs_gan.errors import ConfigError
    from ldm_vs_gan.training import settings

    cfg = OmegaConf.create({"trainer": {"max_images": 10, "batch_size": 2, "lr_decay": "linear"}})
    with pytest.raises(ConfigError, match="trainer.lr_decay='linear'.*none, cosine"):
        settings.read(cfg, world_size=1)
