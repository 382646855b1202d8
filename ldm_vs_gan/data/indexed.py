"""The exact loader for local data: a map-style dataset over stream *positions*, a deterministic
batch sampler, and DataLoader workers.

The stream (docs/CONTRACTS.md, "Data"): the train split is an endless sequence of global
positions p = 0, 1, 2, ...; position p lives in epoch e = p // N and is sample
``perm_e[p % N]`` where ``perm_e`` is a permutation of the N samples seeded by (seed, e). Global
step k covers positions ``[start + k*G, start + (k+1)*G)`` with G = batch_size * world_size, and
rank r takes the r-th contiguous slice of B. So the stream is a pure function of
(seed, images_seen): resuming at ``start_images_seen`` replays nothing, and 2 ranks x B/2 see
exactly the samples of 1 rank x B. Random crops and flips draw from an RNG seeded by (seed, p).

A corrupt sample at position p is counted and replaced by the next valid sample in the same
epoch's permutation (p+1, p+2, ... mod N): still a pure function of (seed, p), batches keep their
size, and the count reaches the trainer in ``Batch.skipped``. The held-out split is read once, in
file order, unshuffled; there corrupt samples are dropped (and counted). Damage found while
indexing (broken tars, duplicate keys) is on the loader's ``damaged`` dict.

Every DataLoader here comes from :func:`make_loader`: its own seeded ``torch.Generator`` (so
``iter(loader)`` leaves the global torch RNG, which resume restores, untouched) and workers that
ignore SIGTERM/SIGINT (a signal to the process group is for the main process, which checkpoints
and then shuts them down). A :class:`UserError` raised where samples are read travels to the main
process as a :class:`Failure` value and is raised there as itself, one line.
"""

from __future__ import annotations

import functools
import signal

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from ldm_vs_gan.data.batch import Batch
from ldm_vs_gan.data.decode import DecodeOptions, Skip, decode_sample, skipped_in_a_row
from ldm_vs_gan.data.shards import ShardIndex, _some
from ldm_vs_gan.errors import UserError

_SALT = 0x5EED_DA7A  # keeps the data order's seed stream apart from model-init seeds
MAX_CONSECUTIVE_BAD = 1000


class PositionDataset(Dataset):
    """Item = one batch: a list of stream positions -> a decoded :class:`Batch`.

    Working per batch (not per sample) lets each DataLoader worker decode a whole batch and keeps
    inter-process traffic to one tensor per batch.
    """

    def __init__(
        self, index: ShardIndex, opts: DecodeOptions, seed: int, shuffle: bool, cache_decoded: bool = False
    ):
        if len(index) == 0:
            raise UserError(f"no samples found in the shards {index.paths[:3]}...")
        self.index, self.opts, self.seed, self.shuffle = index, opts, int(seed), shuffle
        self._perm_epoch, self._perm = -1, None
        # Decoded-sample cache (``data.cache_decoded``, the toy world's default): only when decoding
        # is a pure function of the sample (no random crop/flip), so caching cannot change the
        # stream. Filled lazily, per process; corrupt samples are cached as their skip reason.
        deterministic = opts.crop == "center" and not opts.hflip
        self._decoded: dict[int, dict | str] | None = {} if cache_decoded and deterministic else None
        self._random = not deterministic  # per-position RNG only when crops/flips need one

    def __len__(self) -> int:
        return len(self.index)

    def sample_of(self, position: int) -> int:
        """Which sample index the stream position refers to (the seeded permutation)."""
        n = len(self.index)
        if not self.shuffle:
            return position % n
        epoch = position // n
        if epoch != self._perm_epoch:
            rng = np.random.default_rng([self.seed, epoch, _SALT])
            self._perm, self._perm_epoch = rng.permutation(n), epoch
        return int(self._perm[position % n])

    def decode(self, i: int, position: int) -> dict | str:
        """Sample ``i`` decoded, or its skip reason (an unreadable byte range is a ``tar_error``)."""
        hit = self._decoded.get(i) if self._decoded is not None else None
        if hit is None:
            try:
                rng = np.random.default_rng([self.seed, position, _SALT + 1]) if self._random else None
                hit = decode_sample(self.index.read(i), self.opts, rng)
            except Skip as e:
                hit = e.args[0]
            except OSError:
                hit = "tar_error"
            if self._decoded is not None:
                self._decoded[i] = hit
        return hit

    def load(self, position: int, skipped: dict[str, int]) -> dict | None:
        """The decoded sample at ``position`` (train: a substitute after a corrupt one)."""
        n = len(self.index)
        epoch_start = (position // n) * n
        tries = min(MAX_CONSECUTIVE_BAD, n) if self.shuffle else 1  # n: the whole epoch is bad
        run: dict[str, int] = {}
        for t in range(tries):
            p = epoch_start + (position - epoch_start + t) % n
            hit = self.decode(self.sample_of(p), position)
            if not isinstance(hit, str):
                break
            run[hit] = run.get(hit, 0) + 1
        for reason, k in run.items():
            skipped[reason] = skipped.get(reason, 0) + k
        if not isinstance(hit, str):
            return hit
        if self.shuffle:
            raise skipped_in_a_row(tries, run, _some(self.index.paths), self.opts)
        return None

    def batch(self, positions: list[int]) -> Batch:
        skipped: dict[str, int] = {}
        samples = [s for p in positions if (s := self.load(p, skipped)) is not None]
        return collate(samples, skipped, self.opts.resolution)

    def __getitem__(self, positions: list[int]) -> Batch | Failure:
        try:
            return self.batch(positions)
        except UserError as e:
            return Failure(e)


def collate(samples: list[dict], skipped: dict[str, int], resolution: int) -> Batch:
    if samples and all(s["image"] is not None for s in samples):
        # decoded images are (3,H,W) views of (H,W,3) arrays: stack them in their own layout (a
        # plain memcpy), then convert to float while transposing, in one pass (a strided stack
        # of the views costs ~25% of a 256-px JPEG decode)
        hwc = torch.stack([s["image"].permute(1, 2, 0) for s in samples])  # (B,H,W,3) uint8
        images = torch.empty(hwc.shape[0], 3, hwc.shape[1], hwc.shape[2])
        images.copy_(hwc.permute(0, 3, 1, 2))  # (B,3,H,W) float32, contiguous
        images.div_(127.5).sub_(1.0)  # the mapping of decode.to_float
    elif samples and all(s["image"] is None for s in samples):  # precomputed: nothing to decode
        images = torch.zeros(len(samples), 3, 0, 0)
    elif samples:
        raise UserError(
            f"precomputed samples {[s['key'] for s in samples if s['image'] is None][:3]} have no image "
            "but others of their split do: write each split with one python -m ldm_vs_gan.precompute"
        )
    else:
        images = torch.zeros(0, 3, resolution, resolution)
    return Batch(
        images=images,
        captions=[s["caption"] for s in samples],
        keys=[s["key"] for s in samples],
        attributes=[s["attributes"] for s in samples],
        skipped=skipped,
        extras=_stack_extras(samples),
    )


def _stack_extras(samples: list[dict]) -> dict[str, torch.Tensor] | None:
    """The samples' precomputed arrays stacked per name (None for decoded image samples)."""
    if not samples or "extras" not in samples[0]:
        return None
    names = set(samples[0]["extras"])
    odd = next((s for s in samples if set(s.get("extras", ())) != names), None)
    if odd is not None:
        raise UserError(
            f"precomputed sample {odd['key']!r} has arrays {sorted(odd.get('extras', ()))}, "
            f"sample {samples[0]['key']!r} has {sorted(names)}: write the shards with one precompute"
        )
    return {n: torch.stack([s["extras"][n] for s in samples]) for n in sorted(names)}


class StreamBatchSampler(Sampler):
    """Yields this rank's list of positions for each global step (endless for train)."""

    def __init__(self, n: int, batch_size: int, rank: int, world_size: int, start: int, endless: bool):
        self.n, self.b, self.rank, self.world, self.start = n, batch_size, rank, world_size, start
        self.endless = endless

    def __iter__(self):
        g = self.b * self.world
        k = 0
        while True:
            lo = self.start + k * g + self.rank * self.b
            hi = lo + self.b
            if not self.endless:
                hi = min(hi, self.n)
                if self.start + k * g >= self.n:
                    return
                if lo >= hi:  # this rank's slice of the last, partial global batch is empty
                    k += 1
                    continue
            yield list(range(lo, hi))
            k += 1

    def __len__(self):  # only meaningful for the finite held-out pass
        if self.endless:
            raise TypeError("the train stream is endless")
        g = self.b * self.world
        return max(0, -(-(self.n - self.start) // g))


def _identity(batch):
    return batch


class Failure:
    """A :class:`UserError` from a DataLoader worker, carried as a value: torch re-raises worker
    exceptions wrapped in a multi-line traceback, this arrives as the original one-line error."""

    def __init__(self, error: UserError):
        self.error = error


def ignore_stop_signals(worker_id: int) -> None:
    """worker_init_fn: SIGTERM/SIGINT to the process group are for the main process (it saves a
    checkpoint and shuts the workers down; workers also exit when their parent dies)."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _chained(first, worker_id: int) -> None:
    first(worker_id)
    ignore_stop_signals(worker_id)


def make_loader(dataset, *, seed_parts: list[int], num_workers: int, worker_init_fn=None, **kw) -> DataLoader:
    """A DataLoader with its own generator seeded by ``seed_parts`` (without one, ``iter()`` draws
    the workers' base seed from the global torch RNG) and signal-ignoring workers."""
    g = torch.Generator()
    g.manual_seed(int(np.random.SeedSequence([*seed_parts, _SALT + 4]).generate_state(1, np.uint64)[0] >> 1))
    init = ignore_stop_signals if worker_init_fn is None else functools.partial(_chained, worker_init_fn)
    if num_workers > 0:
        kw.setdefault("persistent_workers", False)
    else:
        kw.pop("prefetch_factor", None)
    return DataLoader(dataset, num_workers=num_workers, generator=g, worker_init_fn=init, **kw)


class SkipMerging:
    """Wraps a loader of Batches: a batch emptied by corrupt samples is not passed on; its skip
    counts ride on the next batch (an empty batch only ends a finite pass that has counts left).
    A :class:`Failure` is raised as its error. ``damaged``: the damage counts found while indexing
    (reason -> count; empty when there is none, or for streamed data, which counts per batch)."""

    def __init__(self, loader, damaged: dict[str, int] | None = None):
        self.loader = loader
        self.damaged: dict[str, int] = dict(damaged or {})

    def __iter__(self):
        pending: dict[str, int] = {}
        for b in self.loader:
            if isinstance(b, Failure):
                raise b.error
            for k, v in b.skipped.items():
                pending[k] = pending.get(k, 0) + v
            if len(b):
                b.skipped, pending = pending, {}
                yield b
        if pending:
            yield collate([], pending, 0)


def build_indexed_loader(
    index: ShardIndex,
    opts: DecodeOptions,
    *,
    split: str,
    batch_size: int,
    rank: int,
    world_size: int,
    seed: int,
    start_images_seen: int,
    num_workers: int,
    prefetch_factor: int = 2,
    cache_decoded: bool = False,
):
    train = split == "train"
    ds = PositionDataset(index, opts, seed, shuffle=train, cache_decoded=cache_decoded)
    sampler = StreamBatchSampler(len(ds), batch_size, rank, world_size, start_images_seen, endless=train)
    # sampler yields whole batches of positions; batch_size=None turns off auto-collation so the
    # dataset's own Batch comes out unchanged, in sampler order (DataLoader keeps order).
    loader = make_loader(
        ds,
        seed_parts=[seed, rank, start_images_seen],
        num_workers=num_workers,
        sampler=sampler,
        batch_size=None,
        collate_fn=_identity,
        prefetch_factor=prefetch_factor,
    )
    return SkipMerging(loader, getattr(index, "damaged", None))
