"""Guards: non-finite losses/gradients and preemption signals.

A non-finite step either stops the run *before* anything is written (the last good checkpoint
stays the last one) or is skipped and counted (``trainer.on_nonfinite``). SIGTERM (SLURM/k8s
preemption, ``timeout``, torchrun forwarding, ``kill -- -PGID``) and SIGINT set a flag; the loop
notices it at the next step boundary, agrees on it across ranks, writes a checkpoint and raises
:class:`StoppedEarly`, which ``python -m ldm_vs_gan.train`` turns into exit status
:data:`EXIT_STOPPED` (75, ``EX_TEMPFAIL``): "stopped early, resumable", distinct from 0 (the
budget is done) and from 2 (a configuration error) so a requeue script can tell them apart.
DataLoader workers ignore both signals (the main process owns the stop). A second SIGINT
interrupts at once.
"""

from __future__ import annotations

import signal
import threading

from ldm_vs_gan.errors import UserError


class NonFiniteError(UserError):
    """Training produced NaN/inf; the message says where and which checkpoint is intact."""


EXIT_STOPPED = 75


class StoppedEarly(Exception):
    """A stop signal ended the run at a step boundary after a checkpoint was written."""

    def __init__(self, signal_name: str, images_seen: int, run_dir):
        self.signal_name, self.images_seen, self.run_dir = signal_name, images_seen, run_dir
        super().__init__(
            f"stopped by {signal_name} at images_seen={images_seen}; checkpoint written to "
            f"{run_dir}/checkpoints/last.pt; launch the same command again to resume"
        )


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
