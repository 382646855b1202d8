"""Process-group set-up from the environment (plain process, ``torchrun``, SLURM via submitit), and
the few collectives the code uses. Training, evaluation and sharded generation all join the group
and exchange objects through here, so there is one set-up and one teardown policy.

torchrun (and ``torch.distributed.run`` on several nodes) exports RANK, WORLD_SIZE, LOCAL_RANK,
MASTER_ADDR and MASTER_PORT; we read them, pick the device (``cuda:LOCAL_RANK`` or CPU) and the
backend (NCCL on CUDA, gloo on CPU). A plain process is rank 0 of 1 and never touches
``torch.distributed``. If a process group already exists (a second ``run`` in the same
process, or a caller that set one up), it is reused; a group created here is destroyed when the
process exits.
"""

from __future__ import annotations

import atexit
import datetime
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from ldm_vs_gan.errors import bad_value


@dataclass
class DistInfo:
    rank: int
    world_size: int
    local_rank: int
    device: torch.device
    owns_group: bool  # True when this module created the process group (and destroys it)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world_size > 1


def env_world_size() -> int:
    """World size as the launcher announces it (1 for a plain process); used by config checks
    that must run before any process group exists."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size()
    return int(os.environ.get("WORLD_SIZE", "1"))


def pick_device(device: str | torch.device, local_rank: int) -> torch.device:
    """``auto``, ``cpu`` or ``cuda`` (this rank's GPU) from ``trainer.device``; a ``torch.device``
    is one a command line already chose and checked (``eval --device cuda:1``), used as it is."""
    if isinstance(device, torch.device):
        if device.type == "cuda" and device.index is not None:
            torch.cuda.set_device(device)
        return device
    if device not in ("auto", "cpu", "cuda"):
        raise bad_value("trainer.device", device, ["auto", "cpu", "cuda"])
    if device == "cuda" and not torch.cuda.is_available():
        raise bad_value("trainer.device", device, "auto or cpu (no CUDA device is visible)")
    if device == "cuda" or (device == "auto" and torch.cuda.is_available()):
        torch.cuda.set_device(local_rank)
        return torch.device("cuda", local_rank)
    return torch.device("cpu")


def setup(device: str | torch.device = "auto", timeout_s: float = 1800) -> DistInfo:
    world = env_world_size()
    if dist.is_available() and dist.is_initialized():
        rank = dist.get_rank()
        local = int(os.environ.get("LOCAL_RANK", rank))
        return DistInfo(rank, world, local, pick_device(device, local), owns_group=False)
    if world <= 1:
        return DistInfo(0, 1, 0, pick_device(device, 0), owns_group=False)
    rank = int(os.environ["RANK"])
    local = int(os.environ.get("LOCAL_RANK", "0"))
    dev = pick_device(device, local)
    backend = "nccl" if dev.type == "cuda" else "gloo"
    dist.init_process_group(
        backend, rank=rank, world_size=world, timeout=datetime.timedelta(seconds=timeout_s)
    )
    # The group lives until the process exits, not until run() returns: destroying and creating
    # a group again on torchrun's agent store can read the old group's stale addresses and hang,
    # so a script that calls run() several times under torchrun reuses this one.
    atexit.register(_destroy)
    return DistInfo(rank, world, local, dev, owns_group=True)


def _destroy() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def teardown(info: DistInfo) -> None:
    """End of a run. Nothing to do: the group stays (see :func:`setup`), and no collective here,
    because after an exception on one rank a barrier would hang the others instead of letting
    the launcher stop them."""


def barrier(info: DistInfo) -> None:
    if info.active:
        dist.barrier()


def any_flag(info: DistInfo, *flags: bool) -> list[bool]:
    """Logical OR of each flag over all ranks (one small all-reduce), so every rank takes the same
    decision (stop on a signal, non-finite step) at the same step."""
    if not info.active:
        return [bool(f) for f in flags]
    t = torch.tensor([float(f) for f in flags], device=info.device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return [bool(v) for v in t.tolist()]


def gather_objects(info: DistInfo, obj) -> list:
    """Every rank's ``obj`` on every rank (picklable, small: RNG states, skip counts)."""
    if not info.active:
        return [obj]
    out = [None] * info.world_size
    dist.all_gather_object(out, obj)
    return out
