"""``trainer.compile``: the modules the phases call, wrapped by ``torch.compile``.

Only the call sites change: ``ctx.nets`` holds compiled wrappers, while the plain modules stay
what is checkpointed, averaged (EMA), sampled and evaluated, so state dicts keep their names (a
compiled wrapper would prefix every key with ``_orig_mod.``) and a run can resume with compile
switched on or off. A DDP wrapper is compiled as a whole (torch's recommended order, so the
compiled graph is split at DDP's bucket boundaries).

A network that declares ``double_backward = True`` stays eager: a gradient penalty such as
GALIP's MA-GP differentiates its gradients again, which AOT autograd (every compiling backend
but ``eager``) refuses at the first backward.
"""

from __future__ import annotations

import warnings

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel as DDP


def _plain(module: nn.Module) -> nn.Module:
    return module.module if isinstance(module, DDP) else module


def needs_double_backward(module: nn.Module) -> bool:
    return bool(getattr(_plain(module), "double_backward", False))


def compile_calls(
    ctx_nets: dict[str, dict[str, nn.Module]], backend: str
) -> tuple[dict[str, dict[str, nn.Module]], list[str]]:
    """``ctx_nets`` (phase -> name -> module to call) with every module compiled once: a module
    called in several phases shares one compiled wrapper (one cache of graphs). Returns the new
    mapping and the names of the networks left eager (sorted)."""
    # The loop's FLOP-counted first step runs eager under FlopCounterMode's global module hooks, and
    # torch warns about hooks on compiled modules; FLOPs are counted per op, so nothing changes.
    warnings.filterwarnings("ignore", message=r"Using `torch.compile\(module\)` when there are global hooks")
    compiled: dict[int, nn.Module] = {}
    eager: set[str] = set()
    out: dict[str, dict[str, nn.Module]] = {}
    for phase, nets in ctx_nets.items():
        out[phase] = {}
        for name, module in nets.items():
            if needs_double_backward(module):
                eager.add(name)
                out[phase][name] = module
                continue
            if id(module) not in compiled:
                compiled[id(module)] = torch.compile(module, backend=backend)
            out[phase][name] = compiled[id(module)]
    return out, sorted(eager)
