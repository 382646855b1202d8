"""The one training loop: every family, every phase, one readable code path.

Per step: take this rank's batch (``data.build_loader``: the stream is a function of (seed,
images seen), so resuming needs no replay), split it into ``accumulate`` micro-batches, each with
its own scratch dict for the step, then for each phase of the family: put the phase's networks in
trainable mode (others frozen, except those whose graph the phase records for a later one),
``family.loss`` under autocast through ``ctx.nets`` (DDP wrappers for the phase's own networks),
backward (scaled for fp16, ``no_sync`` on all but the last micro-batch), unscale, clip, check for
non-finite values, warm-up the learning rate, optimizer step. Then the EMA update, and whatever
interval (in images seen) was crossed: log, samples, quick evaluation, checkpoint.

The data pipeline is a seam: ``run(cfg, data=...)`` takes any object with ``build_loader`` and
``heldout_batch`` as in docs/CONTRACTS.md "Data" (the ``ldm_vs_gan.data`` module by default), so
tests hand in a stand-in instead of patching the module.
"""

from __future__ import annotations

import contextlib
import math
import time
from pathlib import Path

import torch
from hydra.utils import get_class
from omegaconf import DictConfig, OmegaConf
from torch.nn.parallel import DistributedDataParallel as DDP

from ldm_vs_gan import plugins
from ldm_vs_gan.errors import ConfigError
from ldm_vs_gan.training import checkpoint as ckpt
from ldm_vs_gan.training import distributed, precision, settings
from ldm_vs_gan.training.compiled import compile_calls
from ldm_vs_gan.training.ema import EMA
from ldm_vs_gan.training.family import Family, StepContext
from ldm_vs_gan.training.guards import NonFiniteError, StoppedEarly, StopSignals
from ldm_vs_gan.training.optim import build_optimizer, grad_norm, lr_factor, set_lr
from ldm_vs_gan.training.previews import Previewer
from ldm_vs_gan.training.rundir import RunDir, init_weights_from
from ldm_vs_gan.training.runlog import RunLogger


def run(cfg: DictConfig, *, data=None) -> Path:
    """Train (or resume) the run in ``cfg.run_dir``; returns the run dir. See docs/CONTRACTS.md.

    ``data``: where batches come from, an object with ``build_loader`` and ``heldout_batch``
    (docs/CONTRACTS.md "Data"); None is the ``ldm_vs_gan.data`` module. The config is always
    checked by ``ldm_vs_gan.data.check_config``.
    """
    cfg = OmegaConf.create(OmegaConf.to_container(cfg, resolve=True))  # frozen, self-contained
    OmegaConf.set_readonly(cfg, True)
    s = settings.read(cfg, distributed.env_world_size())  # config errors before any work
    from ldm_vs_gan import data as data_mod

    data_mod.check_config(cfg.data)
    if data is None:
        data = data_mod
    info = distributed.setup(s.device, s.dist_timeout_s)
    rd = RunDir(Path(cfg.run_dir))
    # A caller that goes on after run() (a test, a notebook, a study script) keeps its RNG streams.
    try:
        with ckpt.isolated_rng():
            if info.is_main:
                rd.lock()  # one writer per run dir, before anything is read or written there
            # Signals are noted from the start: one that arrives while the family is being built
            # stops the run at its first step boundary, with a checkpoint.
            with StopSignals() as signals:
                return Trainer(cfg, s, info, rd, data).fit(signals)
    finally:
        rd.unlock()
        distributed.teardown(info)


def _family_class(cfg):
    family_cls = get_class(cfg.model._target_)
    if cfg.data.get("precomputed") and not family_cls.reads_precomputed:
        raise ConfigError(
            f"data.precomputed=true holds latents and text features, not images: "
            f"{cfg.model._target_} trains on images (set data.precomputed=false and the image shards)"
        )
    return family_cls


def _build_family(family_cls, cfg) -> Family:
    """The family, initialised identically on every rank, its phases checked against its networks."""
    # Same init on every rank (DDP also broadcasts rank 0's weights, this keeps EMA equal too).
    ckpt.seed_all(int(cfg.seed))
    family = family_cls.from_config(cfg)
    nets = family.networks()
    for ph in family.phases():
        unknown = [n for n in [*ph.networks, *ph.records_graph_for] if n not in nets]
        if unknown:
            raise ConfigError(
                f"phase {ph.name!r} of {cfg.model._target_} names unknown networks {unknown}; "
                f"networks are {sorted(nets)}"
            )
    return family


class _Window:
    """What is summed between two log records: scalars, steps, and the time spent in previews,
    evaluation and checkpoints (left out of the throughput)."""

    def __init__(self, start: float | None = None) -> None:
        self.scalars: dict = {}
        self.steps = 0
        self.start = time.perf_counter() if start is None else start
        self.side = 0.0


class Trainer:
    def __init__(self, cfg: DictConfig, s: settings.Settings, dist: distributed.DistInfo, rd: RunDir, data):
        self.cfg, self.s, self.dist, self.rd = cfg, s, dist, rd
        self.data = data  # build_loader / heldout_batch (see run)
        self.device = dist.device
        self.precision = precision.resolve(s.precision, self.device)
        self.notes: list[str] = []  # lines for the run's log, written once the logger exists
        found = ckpt.load_latest(rd.checkpoints)
        if found is not None:
            self.rd.check_compatible(cfg, found[0])

        family_cls = _family_class(cfg)  # data the family cannot read is refused before any work
        # First-use work of the plug-ins (ldm_vs_gan.plugins), in two steps so that the held-out
        # panel's and eval set's config errors come before any model is trained on first use.
        plugins.prepare(cfg, "data")  # e.g. the toy world's shards (seconds, once)
        if hasattr(data, "probe"):  # filters that drop the whole data set: said now, not minutes in
            data.probe(cfg.data)
        self.previewer = Previewer(s, cfg.data, rd, is_main=dist.is_main, device=self.device, data=data)
        self.previewer.prepare()
        plugins.prepare(cfg, "train")  # e.g. the toy CLIP/VAE stages and judge (minutes, once)
        self.family: Family = _build_family(family_cls, cfg)
        self.family.to(self.device)
        self.nets = self.family.networks()
        self.phases = self.family.phases()
        self.phase_params = {
            ph.name: [p for n in ph.networks for p in self.nets[n].parameters()] for ph in self.phases
        }
        self.opts = {
            ph.name: build_optimizer(ph.optimizer, self.phase_params[ph.name], ph.name) for ph in self.phases
        }
        self.scalers = {ph.name: precision.make_scaler(self.precision, self.device) for ph in self.phases}
        ema_name = self.family.ema_network
        self.ema = EMA(self.nets[ema_name], s.ema_decay, s.ema_warmup, s.ema_every) if ema_name else None
        # DDP only around the networks a phase trains; frozen components are never wrapped.
        trained = sorted({n for ph in self.phases for n in ph.networks})
        self.wrapped = {
            n: (
                DDP(self.nets[n], device_ids=[self.device.index] if self.device.type == "cuda" else None)
                if dist.active
                else self.nets[n]
            )
            for n in trained
        }
        self.ctx_nets = {
            ph.name: {n: (self.wrapped[n] if n in ph.networks else m) for n, m in self.nets.items()}
            for ph in self.phases
        }
        if s.compile:  # only the calls: self.nets stay plain for checkpoints, EMA and sampling
            self.ctx_nets, eager = compile_calls(self.ctx_nets, s.compile_backend)
            self.notes += [
                f"trainer.compile: {n} stays eager (its gradients are differentiated again)" for n in eager
            ]
        # Under DDP a phase must call its own DDP wrappers (the reducer prepares for backward in
        # forward), and with accumulation every micro-batch's graph would be held until the later
        # phase: graphs are carried across phases only in one process without accumulation.
        self.share_across_phases = not dist.active and s.accumulate == 1
        self.images_seen = 0
        self.step = 0
        self.skipped: dict[str, int] = {}
        self.nonfinite_skipped = 0
        self.flops_per_image: float | None = None
        self.damaged: dict[str, int] = {}
        self.resumed_from = self._restore(found)

    # ---- state ---------------------------------------------------------------------------------

    def _restore(self, found) -> str | None:
        if found is not None:
            state, path, problems = found
            self.notes += [f"passed over an unreadable checkpoint: {p}" for p in problems]
            self._load_state(state)
            self._note_schedule_change(OmegaConf.create(state["config_yaml"]))
            return str(path)
        # fresh run: per-rank streams (noise etc.) from (seed, rank)
        ckpt.seed_all(int(self.cfg.seed) * 1000 + 7919 * self.dist.rank + 1)
        if self.cfg.get("init_from"):
            init_weights_from(self.cfg.init_from, self.nets, self.ema)
        return None

    def state(self) -> dict:
        rngs = distributed.gather_objects(self.dist, ckpt.rng_state())
        return {
            "format": ckpt.FORMAT,
            "images_seen": self.images_seen,
            "step": self.step,
            "world_size": self.dist.world_size,
            "networks": {n: m.state_dict() for n, m in self.nets.items()},
            "optimizers": {n: o.state_dict() for n, o in self.opts.items()},
            "scalers": {n: sc.state_dict() for n, sc in self.scalers.items() if sc is not None},
            "ema": self.ema.state_dict() if self.ema else {},
            "rng": rngs,
            "skipped": dict(self.skipped),
            "nonfinite_skipped": self.nonfinite_skipped,
            "flops_per_image": self.flops_per_image,
            "config_yaml": OmegaConf.to_yaml(self.cfg),
        }

    def _load_state(self, state: dict) -> None:
        for n, m in self.nets.items():
            m.load_state_dict(state["networks"][n])
        for n, o in self.opts.items():
            o.load_state_dict(state["optimizers"][n])
        for n, sc in self.scalers.items():
            if sc is not None and n in state["scalers"]:
                sc.load_state_dict(state["scalers"][n])
        if self.ema is not None:
            self.ema.load_state_dict(state["ema"])
        self.images_seen = int(state["images_seen"])
        self.step = int(state["step"])
        self.skipped = dict(state.get("skipped", {}))
        self.nonfinite_skipped = int(state.get("nonfinite_skipped", 0))
        self.flops_per_image = state.get("flops_per_image")
        rngs = state["rng"]
        if len(rngs) == self.dist.world_size:
            ckpt.set_rng_state(rngs[self.dist.rank])
        else:  # another world size: streams cannot continue, reseed them from the position
            ckpt.seed_all(int(self.cfg.seed) * 1000 + 7919 * self.dist.rank + self.images_seen + 1)

    def _note_schedule_change(self, old_cfg) -> None:
        """A resume with another lr schedule (trainer.lr_decay, min_lr_ratio, or max_images under a
        decay) moves the learning rate at once: say so, with the two values."""
        s, t = self.s, old_cfg.trainer  # warmup_images is part of a run's identity: unchanged
        at = self.images_seen + s.batch_size
        new = lr_factor(at, s.warmup_images, s.lr_decay, s.max_images, s.min_lr_ratio)
        old = lr_factor(at, s.warmup_images, str(t.lr_decay), int(t.max_images), float(t.min_lr_ratio))
        if abs(new - old) > 1e-9 * max(abs(old), 1.0):
            self.notes.append(
                f"the learning-rate schedule changed on resume (trainer.lr_decay {t.get('lr_decay')} -> "
                f"{s.lr_decay}, trainer.max_images {t.get('max_images')} -> {s.max_images}): the lr "
                f"factor at images_seen={self.images_seen} moves from {old:.4g} to {new:.4g}"
            )

    def save(self, periodic: bool) -> None:
        state = self.state()  # collective (RNG gather): every rank calls it
        if self.dist.is_main:
            # Weights first: a kill between the two leaves weights ahead of last.pt, and the
            # relaunch recomputes the same steps and writes the same weights again; the other order
            # could leave a finished run whose weights/ never got its last version.
            self.rd.export_weights(self.family, self.nets, self.ema, self.images_seen, self.step)
            ckpt.save_with_copies(
                state, self.rd.checkpoints, self.images_seen, self.s.keep_checkpoints, periodic
            )
        distributed.barrier(self.dist)

    # ---- one step ------------------------------------------------------------------------------

    def _phase(self, ph, micro, scratch: list[dict], scalars: dict) -> bool:
        """Run one phase on the micro-batches (``scratch[i]`` is micro-batch i's scratch for the
        step); returns False when the step was non-finite."""
        opt, scaler = self.opts[ph.name], self.scalers[ph.name]
        grad_on = set(ph.networks) | (set(ph.records_graph_for) if self.share_across_phases else set())
        for n, m in self.nets.items():
            m.requires_grad_(n in grad_on)
        opt.zero_grad(set_to_none=True)
        grad_scale = scaler.get_scale() if scaler else 1.0
        loss_sum = torch.zeros((), device=self.device)
        for i, mb in enumerate(micro):
            ctx = StepContext(
                nets=self.ctx_nets[ph.name],
                grad_scale=grad_scale,
                images_seen=self.images_seen,
                scratch=scratch[i],
                share_across_phases=self.share_across_phases,
            )
            last = i == len(micro) - 1
            with contextlib.ExitStack() as stack:
                if not last and self.dist.active:
                    for n in ph.networks:
                        stack.enter_context(self.wrapped[n].no_sync())
                with precision.autocast(self.precision, self.device):
                    loss, logs = self.family.loss(ph.name, mb, ctx)
                loss = loss.float() / len(micro)
                (scaler.scale(loss) if scaler else loss).backward()
            loss_sum += loss.detach()
            for k, v in logs.items():
                key = f"{ph.name}/{k}"
                v = v.detach().float() if torch.is_tensor(v) else torch.tensor(float(v))
                scalars[key] = scalars.get(key, 0.0) + v.to(self.device) / len(micro)
        if scaler is not None:
            scaler.unscale_(opt)
        gnorm = grad_norm(self.phase_params[ph.name], ph.optimizer.grad_clip)
        # Summed over the steps since the last log; _log_record divides by their number.
        scalars[f"{ph.name}/loss"] = scalars.get(f"{ph.name}/loss", 0.0) + loss_sum
        scalars[f"{ph.name}/grad_norm"] = scalars.get(f"{ph.name}/grad_norm", 0.0) + gnorm.detach().float()
        # fp16: an inf gradient is the scaler's business (it skips the step and lowers the scale);
        # a non-finite loss is not.
        bad_grad = scaler is None and not bool(torch.isfinite(gnorm))
        (bad,) = distributed.any_flag(self.dist, bad_grad or not bool(torch.isfinite(loss_sum)))
        if bad:
            if self.s.on_nonfinite == "stop":
                raise NonFiniteError(self._nonfinite_message(ph.name, loss_sum, gnorm))
            opt.zero_grad(set_to_none=True)
            if scaler is not None:
                scaler.update()
            return False
        peak = ph.optimizer.lr
        s = self.s
        set_lr(
            opt,
            peak
            * lr_factor(
                self.images_seen + s.batch_size, s.warmup_images, s.lr_decay, s.max_images, s.min_lr_ratio
            ),
        )
        if scaler is not None:
            scaler.step(opt)
            scaler.update()
        else:
            opt.step()
        return True

    def _nonfinite_message(self, phase: str, loss, gnorm) -> str:
        last = self.rd.last_checkpoint
        intact = (
            f"the last good checkpoint {last} (images_seen={ckpt.load(last)['images_seen']}) is intact"
            if last.exists()
            else "no checkpoint was written yet"
        )
        return (
            f"non-finite {'loss' if not torch.isfinite(loss) else 'gradient'} in phase {phase!r} at "
            f"images_seen={self.images_seen} (loss={float(loss):.4g}, grad_norm={float(gnorm):.4g}); "
            f"{intact}; set trainer.on_nonfinite=skip to skip such steps, or lower the learning rate"
        )

    def train_step(self, batch, scalars: dict) -> None:
        micro = batch.split(self.s.accumulate) if self.s.accumulate > 1 else [batch]
        scratch = [{} for _ in micro]  # shared by the phases, dropped with the step
        ok = True
        for ph in self.phases:
            ok = self._phase(ph, micro, scratch, scalars) and ok
        if not ok:
            self.nonfinite_skipped += 1
        if self.ema is not None:
            self.ema.update()
        for k, v in batch.skipped.items():
            self._pending_skips[k] = self._pending_skips.get(k, 0) + int(v)

    # ---- the loop ------------------------------------------------------------------------------

    def fit(self, signals: StopSignals) -> Path:
        s, cfg, dist = self.s, self.cfg, self.dist
        if dist.is_main:
            self.rd.write_config(cfg)
        distributed.barrier(dist)
        log = RunLogger(
            self.rd.path,
            cfg,
            enabled=dist.is_main,
            max_images=s.max_images,
            start_images=self.images_seen,
            progress=s.progress,
        )
        try:
            return self._fit(log, signals)
        finally:
            log.close()

    def _fit(self, log: RunLogger, signals: StopSignals) -> Path:
        s = self.s
        it = iter(self._open_loader())
        if self.resumed_from:
            log.message(f"resumed from {self.resumed_from} at images_seen={self.images_seen}")
        for note in self.notes:
            log.message(note)
        self._pending_skips: dict[str, int] = {}
        window = _Window()
        # FLOPs are measured on the first step of a *fresh* run only and kept in the checkpoint:
        # FlopCounterMode can change results in the last bit, so measuring again after a resume
        # would break bitwise-exact resumption.
        flops_per_image = self.family.flops_per_image() or self.flops_per_image
        measure = s.measure_flops and flops_per_image is None and self.images_seen == 0
        self.family.train()
        while self.images_seen < s.max_images:
            self._stop_if_signalled(signals, log)
            batch = next(it).to(self.device, non_blocking=True)
            if measure:
                flops_per_image = self.flops_per_image = self._measured_step(batch, window.scalars)
                measure = False
            else:
                self.train_step(batch, window.scalars)
            before = self.images_seen
            self.images_seen += s.batch_size
            self.step += 1
            window.steps += 1
            log.progress(s.batch_size)
            window = self._at_intervals(before, log, window, flops_per_image)
        return self.rd.path

    def _open_loader(self):
        """This rank's training stream from the current position; notes shard damage."""
        s, cfg, dist = self.s, self.cfg, self.dist
        loader = self.data.build_loader(
            cfg.data,
            split="train",
            batch_size=s.per_rank_batch,
            rank=dist.rank,
            world_size=dist.world_size,
            seed=int(cfg.seed),
            start_images_seen=self.images_seen,
            num_workers=s.num_workers,
        )
        self.damaged = dict(getattr(loader, "damaged", None) or {})
        if self.damaged:
            self.notes.append(f"data: damaged shard files or entries skipped while indexing: {self.damaged}")
        return loader

    def _stop_if_signalled(self, signals: StopSignals, log: RunLogger) -> None:
        """At a step boundary: a stop signal on any rank writes a checkpoint and stops every rank."""
        (stop,) = distributed.any_flag(self.dist, signals.received is not None)
        if stop:
            name = signals.name or "a stop signal on another rank"
            log.message(f"{name}: writing a checkpoint at images_seen={self.images_seen} and exiting")
            self.save(periodic=False)
            raise StoppedEarly(name, self.images_seen, self.rd.path)

    def _at_intervals(self, before: int, log: RunLogger, window: _Window, flops_per_image) -> _Window:
        """Whatever interval the step from ``before`` crossed: log record, samples, quick
        evaluation, checkpoint (the last step does all that are on). Returns the log window."""
        s, after = self.s, self.images_seen
        done = after >= s.max_images
        if settings.crossed(before, after, s.log_every) or done:
            now = time.perf_counter()
            rec = self._log_record(
                window.scalars, window.steps, now - window.start - window.side, flops_per_image
            )
            log.log(rec)
            if log.bar is not None:
                log.bar.set_postfix(
                    {k: f"{v:.4g}" for k, v in rec.items() if k.endswith("/loss")}, refresh=False
                )
            window = _Window(start=now)
        t0 = time.perf_counter()
        if settings.crossed(before, after, s.sample_every) or (done and s.sample_every > 0):
            self.previewer.samples(self.family, self.ema, self.images_seen, log)
        if settings.crossed(before, after, s.eval_every) or (done and s.eval_every > 0):
            self.previewer.evaluate(self.family, self.ema, self.step, self.images_seen, log)
        if settings.crossed(before, after, s.ckpt_every) or done:
            self.save(periodic=settings.crossed(before, after, s.ckpt_every))
        window.side += time.perf_counter() - t0
        return window

    def _measured_step(self, batch, scalars) -> float | None:
        """The first step of a process runs under ``FlopCounterMode`` (forward + backward FLOPs of
        every phase; the optimizer is not counted), giving model FLOPs per image."""
        from torch.utils.flop_counter import FlopCounterMode

        counter = FlopCounterMode(display=False)
        with counter:
            self.train_step(batch, scalars)
        flops = counter.get_total_flops()
        return flops / len(batch) if flops else None

    def _log_record(self, scalars: dict, n_steps: int, seconds: float, flops_per_image) -> dict:
        skips = distributed.gather_objects(self.dist, self._pending_skips)
        for d in skips:
            for k, v in d.items():
                self.skipped[k] = self.skipped.get(k, 0) + v
        self._pending_skips = {}
        rec = {"step": self.step, "images_seen": self.images_seen}
        for k, v in sorted(scalars.items()):
            rec[k] = float(v) / n_steps
        for ph in self.phases:
            rec[f"lr/{ph.name}"] = self.opts[ph.name].param_groups[0]["lr"]
            sc = self.scalers[ph.name]
            if sc is not None:
                rec[f"grad_scale/{ph.name}"] = sc.get_scale()
        ips = n_steps * self.s.batch_size / seconds if seconds > 0 else math.nan
        rec["img_per_s"] = ips
        if flops_per_image:
            rec["flops_per_image"] = flops_per_image
            rec["tflops_per_s"] = flops_per_image * ips / 1e12
        if self.ema is not None:
            rec["ema_decay"] = self.ema.current_decay()
        for k, v in sorted(self.skipped.items()):
            rec[f"skipped/{k}"] = v
        for k, v in sorted(self.damaged.items()):
            rec[f"data/damaged/{k}"] = v
        rec["nonfinite_skipped"] = self.nonfinite_skipped
        return rec
