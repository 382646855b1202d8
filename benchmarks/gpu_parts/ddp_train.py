"""Run by ``torchrun`` in the GPU check: join the process group with NCCL (on CUDA; gloo on a
CPU), check an all-reduce and a DDP step, write what was checked to ``$GPU_CHECK_REPORT``, then
hand over to ``python -m ldm_vs_gan.train`` with this script's arguments, which finds the group
and trains in it.

Why not torchrun ``-m ldm_vs_gan.train`` alone: with one process the trainer never creates a
group (a world of one has nothing to synchronise), so NCCL would go untested on a one-GPU
machine; NCCL refuses two ranks on one GPU.
"""

from __future__ import annotations

import json
import os
import runpy
import sys

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel as DDP


def check_group(device: torch.device) -> dict:
    world, rank = dist.get_world_size(), dist.get_rank()
    t = torch.full((4,), float(rank + 1), device=device)
    dist.all_reduce(t)
    expected = world * (world + 1) / 2
    torch.manual_seed(0)
    net = torch.nn.Linear(8, 4).to(device)
    ddp = DDP(net, device_ids=[device.index] if device.type == "cuda" else None)
    ddp(torch.randn(16, 8, device=device)).square().mean().backward()
    grads_ok = all(p.grad is not None and bool(torch.isfinite(p.grad).all()) for p in net.parameters())
    report = {
        "backend": dist.get_backend(),
        "world_size": world,
        "all_reduce_ok": bool(torch.all(t == expected)),
        "ddp_step_ok": grads_ok,
    }
    if device.type == "cuda":
        report["nccl_version"] = ".".join(map(str, torch.cuda.nccl.version()))
        report["gpu"] = torch.cuda.get_device_name(device)
    return report


def main() -> None:
    local = int(os.environ.get("LOCAL_RANK", "0"))
    cuda = os.environ.get("GPU_CHECK_DEVICE", "cuda") == "cuda"
    device = torch.device("cuda", local) if cuda else torch.device("cpu")
    if cuda:
        torch.cuda.set_device(device)
    dist.init_process_group("nccl" if cuda else "gloo")
    report = check_group(device)
    with open(os.environ["GPU_CHECK_REPORT"], "w") as f:
        json.dump(report, f)
    sys.argv = ["ldm_vs_gan.train", *sys.argv[1:]]
    try:
        runpy.run_module("ldm_vs_gan.train", run_name="__main__", alter_sys=True)
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
