"""Sample grids of the fixed prompt panel and the quick evaluation, both on rank 0 with EMA weights.

The panel is the first ``trainer.sample.n`` held-out samples (``data.heldout_batch``) with seeds
``trainer.sample.seed + i``: the same prompts and noise at every interval, so grids are comparable
along a run and across runs. Grids are PNGs named by images seen (``samples/000000012800.png``);
the captions are written once to ``samples/panel.txt``.

Both read the held-out split at start (``prepare``), so a missing or unusable held-out split is a
config error before the first step, not after the first interval of training. Both run inside
``checkpoint.isolated_rng``: they never move the training RNG streams, so a run stopped and
resumed at a preview boundary continues exactly like one that never stopped.
"""

from __future__ import annotations

import contextlib
import json

import torch

from ldm_vs_gan.errors import UserError
from ldm_vs_gan.training import checkpoint as ckpt


class Previewer:
    def __init__(self, trainer, log=None):
        self.t = trainer
        self.log = log  # the run's logger, set once it exists
        self._panel = None
        self._eval_batches = None
        self._quick_eval_missing_warned = False

    def _ema(self):
        return self.t.ema.swapped_in() if self.t.ema is not None else contextlib.nullcontext()

    @contextlib.contextmanager
    def _eval_mode(self):
        fam = self.t.family
        fam.eval()
        try:
            with torch.no_grad(), self._ema():
                yield fam
        finally:
            fam.train()

    def prepare(self) -> None:
        """Load the panel and the quick-evaluation set now (rank 0, when their intervals are on)."""
        t = self.t
        if not t.dist.is_main:
            return
        if t.s.sample_every > 0 and t.s.sample_n > 0:
            self._panel = self._heldout(t.s.sample_n, "trainer.sample.n", "trainer.sample_every")
        if t.s.eval_every > 0 and t.s.eval_n > 0:
            full = self._heldout(t.s.eval_n, "trainer.eval.n", "trainer.eval_every")
            self._eval_batches = [b.to(t.device) for b in full.split(-(-len(full) // t.s.eval_batch_size))]

    def _heldout(self, n: int, n_key: str, every_key: str):
        from ldm_vs_gan import data as data_mod

        try:
            return data_mod.heldout_batch(self.t.cfg.data, n).to(self.t.device)
        except UserError as ex:
            raise type(ex)(
                f"{n_key}={n} held-out samples are needed every {every_key}={getattr(self.t.s, every_key.split('.')[1])} "
                f"images: {ex} (or set {every_key}=0)"
            ) from None

    def samples(self) -> None:
        t = self.t
        if not t.dist.is_main or t.s.sample_n <= 0:
            return
        from torchvision.utils import make_grid

        if self._panel is None:
            self.prepare()
        if not (t.rd.samples / "panel.txt").exists():
            (t.rd.samples / "panel.txt").write_text(
                "".join(f"{t.s.sample_seed + i}\t{c}\n" for i, c in enumerate(self._panel.captions))
            )
        seeds = [t.s.sample_seed + i for i in range(len(self._panel))]
        with ckpt.isolated_rng(), self._eval_mode() as fam:
            images = fam.preview(self._panel, seeds)
        if images.dtype != torch.uint8:
            raise TypeError(f"{type(fam).__name__}.preview must return uint8 images, got {images.dtype}")
        grid = make_grid(images.cpu(), nrow=t.s.sample_nrow, padding=1)
        path = t.rd.samples / f"{t.images_seen:012d}.png"
        from PIL import Image

        Image.fromarray(grid.permute(1, 2, 0).numpy()).save(path)
        self.log.image("samples", path, t.images_seen, caption=f"images_seen={t.images_seen}")

    def evaluate(self) -> None:
        t = self.t
        if not t.dist.is_main or t.s.eval_n <= 0:
            return
        if self._eval_batches is None:
            self.prepare()
        # No collective in here: it runs on rank 0 while the other ranks wait at the checkpoint.
        with ckpt.isolated_rng(), self._eval_mode() as fam:
            results = {f"eval/{k}": float(v) for k, v in fam.evaluate(self._eval_batches).items()}
            if fam.generative:
                quick_eval = self._quick_eval()
                if quick_eval is not None:
                    q = quick_eval(fam, self._eval_batches, t.cfg.data)
                    results.update({f"eval/{k}": float(v) for k, v in q.items()})
        rec = {"step": t.step, "images_seen": t.images_seen, "ema": t.ema is not None, **results}
        self.log.log(rec)
        path = t.rd.eval / f"quick_{t.images_seen:012d}.json"
        ckpt.atomic_write_bytes(path, (json.dumps(rec, indent=2) + "\n").encode())

    def _quick_eval(self):
        # The metrics room provides quick_eval; until it lands the engine works without it. Only a
        # missing *name* is tolerated: an error while importing the package propagates.
        import ldm_vs_gan.metrics as metrics

        fn = getattr(metrics, "quick_eval", None)
        if fn is None and not self._quick_eval_missing_warned:
            self.log.message(
                "ldm_vs_gan.metrics.quick_eval is not available: quick evaluation logs "
                "only the family's own evaluate()"
            )
            self._quick_eval_missing_warned = True
        return fn
