"""Exponential moving average of the sampling network's weights.

theta_ema <- d * theta_ema + (1 - d) * theta, with the warm-up of the LDM reference code
d_n = min(decay, (1 + n) / (10 + n)) after n updates (as in Stable Diffusion), so early averages are not
dominated by the random initialisation. Floating buffers (e.g. norm statistics) are copied, not
averaged. The EMA is kept in fp32 on the training device. ``every=k`` updates once every k steps
with decay d**k (the same time constant in steps, a k-th of the cost: the EMA pass over the
weights costs about as much as a few percent of a small model's step).
"""

from __future__ import annotations

import contextlib

import torch
from torch import nn


class EMA:
    def __init__(self, module: nn.Module, decay: float, warmup: bool = True, every: int = 1):
        if not 0.0 <= decay < 1.0:
            from ldm_vs_gan.errors import ConfigError

            raise ConfigError(f"trainer.ema.decay={decay!r} is not allowed; choose a value in [0, 1)")
        self.module = module
        self.decay = float(decay)
        self.warmup = bool(warmup)
        self.every = max(1, int(every))
        self.updates = 0  # steps seen (n of the warm-up formula)
        self.params = [p.detach().float().clone() for p in module.parameters()]
        self.names = [n for n, _ in module.named_parameters()]

    def current_decay(self) -> float:
        if not self.warmup:
            return self.decay
        n = self.updates
        return min(self.decay, (1 + n) / (10 + n))

    @torch.no_grad()
    def update(self) -> None:
        d = self.current_decay()
        self.updates += 1
        if self.updates % self.every:
            return
        d = d**self.every
        live = [p.detach().float() for p in self.module.parameters()]
        # lerp_(end, w): ema + w * (live - ema) == d * ema + (1 - d) * live with w = 1 - d
        torch._foreach_lerp_(self.params, live, 1.0 - d)

    def state_dict(self) -> dict:
        return {
            "updates": self.updates,
            "params": {n: p for n, p in zip(self.names, self.params)},
        }

    def load_state_dict(self, state: dict) -> None:
        self.updates = int(state["updates"])
        for n, p in zip(self.names, self.params):
            p.copy_(state["params"][n])

    def ema_state_dict(self) -> dict[str, torch.Tensor]:
        """The network's state dict with EMA parameters (in the network's dtype) and live buffers."""
        sd = self.module.state_dict()
        out = {}
        for n, t in sd.items():
            out[n] = t
        ema = dict(zip(self.names, self.params))
        for n in list(out):
            if n in ema:
                out[n] = ema[n].to(out[n].dtype)
        return out

    @contextlib.contextmanager
    def swapped_in(self):
        """Temporarily put the EMA weights into the live network (samples, previews, evaluation)."""
        params = list(self.module.parameters())
        backup = [p.detach().clone() for p in params]
        with torch.no_grad():
            for p, e in zip(params, self.params):
                p.copy_(e)
        try:
            yield self.module
        finally:
            with torch.no_grad():
                for p, b in zip(params, backup):
                    p.copy_(b)
