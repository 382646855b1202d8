"""The loop's view of the process group: a re-export of :mod:`ldm_vs_gan.distributed`, the one
place that creates or joins the group (shared with evaluation, which may not import training)."""

from ldm_vs_gan.distributed import (
    DistInfo,
    any_flag,
    barrier,
    env_world_size,
    gather_objects,
    pick_device,
    setup,
    teardown,
)

__all__ = [
    "DistInfo",
    "any_flag",
    "barrier",
    "env_world_size",
    "gather_objects",
    "pick_device",
    "setup",
    "teardown",
]
