"""The training engine: one loop for every family (docs/CONTRACTS.md "Engine").

``run(cfg, *, data=None) -> Path`` trains or resumes ``cfg.run_dir`` (``data``: an object with
``build_loader`` and ``heldout_batch``, the ``ldm_vs_gan.data`` module when None); ``load_run(run_dir, *, weights="ema",
device="cpu") -> (family, cfg, info)`` rebuilds a trained family. Imported lazily so that
``import ldm_vs_gan.training.family`` stays light.

What a family can rely on (and must respect):

- ``from_config(cfg)`` runs after ``seed_all(cfg.seed)`` on every rank (identical init), on the
  CPU; the loop then moves the family to the device. Raise ``ConfigError`` there for settings that
  cannot work: it reaches the user as one line before any training.
- During a phase only that phase's networks have ``requires_grad=True``; the other networks are
  frozen for the phase (gradients still flow *through* them to inputs, as GALIP's generator
  phase needs), so a phase never leaves gradients in another phase's parameters. The exception
  is a network in ``Phase.records_graph_for`` when ``ctx.share_across_phases`` is true: its
  graph is recorded for a later phase (through detached tensors only in this phase's loss).
- Phases of one step pass work forward in ``ctx.scratch`` (one dict per micro-batch, shared by
  the step's phases, dropped after the step), never in family attributes.
- ``loss`` runs under autocast (bf16/fp16 when configured); return the loss as any float dtype
  (the loop casts it to fp32 before scaling). ``ctx.grad_scale`` is the fp16 scale of the phase.
- With accumulation ``loss`` is called once per micro-batch; the loop averages (equal sizes).
- Random draws in ``loss`` (noise, timesteps) come from the global torch RNG, which is per rank
  and checkpointed: resume is exact; 1 vs N ranks see different noise (not bitwise comparable).
- ``family.train()`` during steps, ``family.eval()`` + ``torch.no_grad()`` + EMA weights swapped
  into the ``ema_network`` for ``preview``/``evaluate``/``quick_eval`` (rank 0 only).
- ``from_config`` builds frozen components from what the plug-ins' preparers made before it
  (``ldm_vs_gan.plugins.prepare``: toy world, toy stages); it never trains one itself. List the
  config nodes of those components in ``Family.components``.
- ``run`` under torchrun joins the existing process group, so every rank must make that call. It
  restores the caller's RNG streams on return.
"""

from __future__ import annotations

__all__ = ["run", "load_run"]


def run(cfg, *, data=None):
    from ldm_vs_gan.training.loop import run as _run

    return _run(cfg, data=data)


def load_run(run_dir, *, weights: str = "ema", device="cpu"):
    from ldm_vs_gan.training.rundir import load_run as _load_run

    return _load_run(run_dir, weights=weights, device=device)


run.__doc__ = "Train (or resume) the run in ``cfg.run_dir``; returns the run dir (see loop.run)."
load_run.__doc__ = "Rebuild a run's family with its weights: (family, cfg, info) (see rundir.load_run)."
