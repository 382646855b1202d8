"""Composing ``configs/`` as ``python -m ldm_vs_gan.train`` does, for the config and schema tests."""

from hydra import compose, initialize_config_dir

from ldm_vs_gan.train import CONFIG_DIR


def compose_train(overrides: list[str]):
    """The composed train config for ``overrides`` (no hydra node)."""
    with initialize_config_dir(str(CONFIG_DIR), version_base="1.3", job_name="train"):
        return compose("train", overrides=list(overrides))


def leaves(d: dict, prefix: str = ""):
    """``("a.b", value)`` for every leaf of a nested dict."""
    for k, v in d.items():
        if isinstance(v, dict):
            yield from leaves(v, f"{prefix}{k}.")
        else:
            yield f"{prefix}{k}", v
