"""Shared helpers of the stage tests (no tests here): a small toy world and tiny stage overrides."""

from hydra import compose, initialize_config_dir
from test_components_support import CONFIGS

# A small toy world (generated into the session cache in about a second).
SMALL_WORLD = ["data.n_train=256", "data.n_heldout=64", "data.shard_size=128"]

TINY = {
    "clip": [
        "model.arch.embed_dim=32",
        "model.arch.vision_cfg.width=32",
        "model.arch.vision_cfg.layers=2",
        "model.arch.vision_cfg.head_width=16",
        "model.arch.vision_cfg.grid=4",
        "model.arch.vision_cfg.conv_stem=[8,16]",
        "model.arch.text_cfg.width=32",
        "model.arch.text_cfg.heads=2",
        "model.arch.text_cfg.layers=1",
        "model.arch.text_cfg.context_length=16",
    ],
    "vae": [
        "model.arch.channels=[8,16,16]",
        "model.arch.norm_num_groups=4",
        "model.arch.mid_block_attention=false",
    ],
}

# Two steps of 16 images, a preview and an evaluation at the end.
SMOKE = [
    "trainer=smoke",
    "trainer.max_images=32",
    "trainer.sample_every=32",
    "trainer.eval_every=32",
    "trainer.ckpt_every=32",
    "trainer.eval.n=32",
    "trainer.eval.batch_size=16",
]


def stage_cfg(kind: str, run_dir, extra=()):
    with initialize_config_dir(str(CONFIGS), version_base="1.3"):
        return compose(
            "train",
            overrides=[
                f"model={kind}",
                "logger=none",
                f"run_dir={run_dir}",
                *SMALL_WORLD,
                *TINY[kind],
                *SMOKE,
                *extra,
            ],
        )
