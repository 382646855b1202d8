"""The toy world: the offline world every part of the framework runs on without downloads.

- ``world.py``: captioned images of one or two coloured shapes, generated from a seed and written
  as ordinary webdataset shards (``data=toy``).
- ``judge.py``: a small CNN that reads a toy image back into its attributes (prompt fidelity; its
  features are the toy world's Inception for FID-toy).
- ``metrics.py``: the judge as a feature space (``--feature toy``) and the quick evaluation of
  toy runs during training.
- ``stages.py``: ``clip=toy`` / ``autoencoder=toy``, the CLIP and VAE stages trained on the world
  once and cached.
- ``prepare.py``: the one place where any of these is made on first use.
- ``config.py``: the schemas of those config nodes.

The generic rooms never import this package. It plugs into them through ``ldm_vs_gan.plugins``,
as a user's own data source, weight source or feature space would: importing it registers the
parts below (``plugins.BUILTIN`` names it).
"""

from __future__ import annotations

from ldm_vs_gan import plugins
from ldm_vs_gan.toy import config


class _ToyData:
    """The ``data`` plug-in ``toy``: the generated world's shards, read by the shard reader."""

    schema = config.ToyData
    heldout_key = "n_heldout"

    @staticmethod
    def open(c, split: str):
        from ldm_vs_gan.data.shards import ShardIndex
        from ldm_vs_gan.toy.world import shard_paths

        return ShardIndex(shard_paths(c, split), in_memory=c.in_memory)


class _StageSource:
    """A ``clip`` / ``autoencoder`` plug-in ``toy``: the cached toy stage's weights."""

    def __init__(self, kind: str, schema):
        self.kind, self.schema = kind, schema

    def check(self, node, data_cfg) -> None:
        """Nothing to locate before the run: the preparer trains the stage if it is missing."""

    def build(self, node, data_cfg):
        from ldm_vs_gan.components.sources import autoencoder_from_run, clip_from_run
        from ldm_vs_gan.toy.stages import find_stage

        run_dir = find_stage(self.kind, node, data_cfg)
        if self.kind == "clip":
            return clip_from_run(run_dir, key="clip (toy stage)")
        return autoencoder_from_run(run_dir, key="autoencoder (toy stage)", latent=node.latent)


class _Lazy:
    """A plug-in whose implementation is imported on first use (keeps ``import`` light)."""

    def __init__(self, module: str, attr: str):
        self.module, self.attr = module, attr

    def __getattr__(self, name):
        import importlib

        return getattr(getattr(importlib.import_module(self.module), self.attr), name)


plugins.register("data", "toy", _ToyData)
plugins.register("clip", "toy", _StageSource("clip", config.ToyCLIP))
plugins.register("autoencoder", "toy", _StageSource("vae", config.ToyAutoencoder))
plugins.register("features", "toy", _Lazy("ldm_vs_gan.toy.metrics", "JudgeSpace"))
plugins.register("quick", "toy", _Lazy("ldm_vs_gan.toy.metrics", "ToyQuick"))
plugins.register("prepare", "toy", _Lazy("ldm_vs_gan.toy.prepare", "ToyPreparer"))
