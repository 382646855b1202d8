"""Sample grids of the fixed prompt panel and the quick evaluation, both on rank 0 with EMA weights.

The panel is the first ``trainer.sample.n`` held-out samples (``heldout_batch`` of the data access
the loop was given, ``ldm_vs_gan.data`` by default) with seeds
``trainer.sample.seed + i``: the same prompts and noise at every interval, so grids are comparable
along a run and across runs. Grids are PNGs named by images seen (``samples/000000012800.png``);
the captions are written once to ``samples/panel.txt``.

Both read the held-out split at start (``prepare``), so a missing or unusable held-out split is a
config error before the first step, not after the first interval of training. Both run inside
``checkpoint.isolated_rng``: they never move the training RNG streams, so a run stopped and
resumed at a preview boundary continues exactly like one that never stopped.

The previewer is given what it reads when it is made (settings, data config, run dir, rank, device,
data access) and, per call, what changes along the run (the family, its EMA, the position, the
logger); it never sees the trainer.
"""

from __future__ import annotations

import contextlib
import json

import torch

from ldm_vs_gan.errors import UserError
from ldm_vs_gan.training import checkpoint as ckpt
from ldm_vs_gan.training.ema import EMA
from ldm_vs_gan.training.family import Family
from ldm_vs_gan.training.rundir import RunDir
from ldm_vs_gan.training.runlog import RunLogger
from ldm_vs_gan.training.settings import Settings


class Previewer:
    def __init__(self, s: Settings, data_cfg, rd: RunDir, *, is_main: bool, device, data):
        self.s, self.data_cfg, self.rd = s, data_cfg, rd
        self.is_main, self.device = is_main, device
        self.data = data  # has heldout_batch(data_cfg, n, offset=0) (docs/CONTRACTS.md "Data")
        self._panel = None
        self._eval_batches = None

    @staticmethod
    @contextlib.contextmanager
    def _eval_mode(family, ema):
        family.eval()
        try:
            with torch.no_grad(), ema.swapped_in() if ema is not None else contextlib.nullcontext():
                yield family
        finally:
            family.train()

    def prepare(self) -> None:
        """Load the panel and the quick-evaluation set now (rank 0, when their intervals are on)."""
        s = self.s
        if not self.is_main:
            return
        if s.sample_every > 0 and s.sample_n > 0:
            self._panel = self._heldout(
                s.sample_n, "trainer.sample.n", "trainer.sample_every", s.sample_every
            )
        if s.eval_every > 0 and s.eval_n > 0:
            full = self._heldout(s.eval_n, "trainer.eval.n", "trainer.eval_every", s.eval_every)
            self._eval_batches = [b.to(self.device) for b in full.split(-(-len(full) // s.eval_batch_size))]

    def _heldout(self, n: int, n_key: str, every_key: str, every: int):
        try:
            return self.data.heldout_batch(self.data_cfg, n).to(self.device)
        except UserError as ex:
            raise type(ex)(
                f"{n_key}={n} held-out samples are needed every {every_key}={every} "
                f"images: {ex} (or set {every_key}=0)"
            ) from None

    def samples(self, family: Family, ema: EMA | None, images_seen: int, log: RunLogger) -> None:
        """The panel's grid at ``images_seen`` (EMA weights swapped in when there is an EMA)."""
        s = self.s
        if not self.is_main or s.sample_n <= 0:
            return
        from torchvision.utils import make_grid

        if self._panel is None:
            self.prepare()
        if not (self.rd.samples / "panel.txt").exists():
            (self.rd.samples / "panel.txt").write_text(
                "".join(f"{s.sample_seed + i}\t{c}\n" for i, c in enumerate(self._panel.captions))
            )
        seeds = [s.sample_seed + i for i in range(len(self._panel))]
        with ckpt.isolated_rng(), self._eval_mode(family, ema) as fam:
            images = fam.preview(self._panel, seeds)
        if images.dtype != torch.uint8:
            raise TypeError(f"{type(fam).__name__}.preview must return uint8 images, got {images.dtype}")
        grid = make_grid(images.cpu(), nrow=s.sample_nrow, padding=1)
        path = self.rd.samples / f"{images_seen:012d}.png"
        from PIL import Image

        Image.fromarray(grid.permute(1, 2, 0).numpy()).save(path)
        log.image("samples", path, images_seen, caption=f"images_seen={images_seen}")

    def evaluate(self, family: Family, ema: EMA | None, step: int, images_seen: int, log: RunLogger) -> None:
        """The family's ``evaluate`` and, for generative families, ``metrics.quick_eval``."""
        if not self.is_main or self.s.eval_n <= 0:
            return
        if self._eval_batches is None:
            self.prepare()
        # No collective in here: it runs on rank 0 while the other ranks wait at the checkpoint.
        with ckpt.isolated_rng(), self._eval_mode(family, ema) as fam:
            results = {f"eval/{k}": float(v) for k, v in fam.evaluate(self._eval_batches).items()}
            if fam.generative:
                # lazily: the loop's import stays light for families that never evaluate
                from ldm_vs_gan.metrics.quick import quick_eval

                q = quick_eval(fam, self._eval_batches, self.data_cfg)
                results.update({f"eval/{k}": float(v) for k, v in q.items()})
        rec = {"step": step, "images_seen": images_seen, "ema": ema is not None, **results}
        log.log(rec)
        path = self.rd.eval / f"quick_{images_seen:012d}.json"
        ckpt.atomic_write_bytes(path, (json.dumps(rec, indent=2) + "\n").encode())
