"""Guards: non-finite losses/gradients and preemption signals.

A non-finite step either stops the run *before* anything is written (the last good checkpoint
stays the last one) or is skipped and counted (``trainer.on_nonfinite``). SIGTERM (SLURM/k8s
preemption, torchrun forwarding) and SIGINT set a flag; the loop notices it at the next step
boundary, agrees on it across ranks, writes a checkpoint and returns. A second SIGINT interrupts
at once.
"""

from __future__ import annotations

import signal
import threading

from ldm_vs_gan.errors import UserError


class NonFiniteError(UserError):
    """Training produced NaN/inf; the message says where and which checkpoint is intact."""


class StopSignals:
    def __init__(self):
        self.received: int | None = None
        self._old = {}

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.received is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.received = signum

    @property
    def name(self) -> str:
        return signal.Signals(self.received).name if self.received else ""

    def __exit__(self, *exc):
        for sig, old in self._old.items():
            signal.signal(sig, old)
        return False
