"""The training engine (issue 3): one loop for every family (docs/CONTRACTS.md "Engine").

``run(cfg) -> Path`` trains or resumes ``cfg.run_dir``; ``load_run(run_dir, weights="ema",
device="cpu") -> (family, cfg, info)`` rebuilds a trained family. Imported lazily so that
``import ldm_vs_gan.training.family`` stays light.
"""

from __future__ import annotations

__all__ = ["run", "load_run"]


def run(cfg):
    from ldm_vs_gan.training.loop import run as _run

    return _run(cfg)


def load_run(run_dir, *, weights: str = "ema", device="cpu"):
    from ldm_vs_gan.training.rundir import load_run as _load_run

    return _load_run(run_dir, weights=weights, device=device)


run.__doc__ = "Train (or resume) the run in ``cfg.run_dir``; returns the run dir (see loop.run)."
load_run.__doc__ = "Rebuild a run's family with its weights: (family, cfg, info) (see rundir.load_run)."
