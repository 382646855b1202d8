"""The streaming loader: webdataset shards read front to back (remote URLs, or ``data.mode:
stream``), for data that cannot be indexed for random access.

Each (rank, worker) reads its own shards: in epoch mode (``resampled: false``) the shard list is
shuffled per epoch with a seed shared by all ranks, then split by node (rank r takes shards
r, r+W, ...) and by worker, so every sample is read exactly once per epoch across ranks and
workers; in resampled mode (the default for training, webdataset's ``resampled=True``) every
(rank, worker) draws shards with replacement from its own seeded RNG, so uneven shards never
leave a rank idle. Samples pass a shuffle buffer, then the same decoder as the indexed loader.

Resumption: all RNGs are seeded from (seed, rank, worker, images_seen), so a resumed stream is a
fresh draw from the same distribution: *statistically*, not bitwise, equivalent to the
uninterrupted stream (the indexed loader is the exact one). Errors are counted, never slept on
(webdataset's ``warn_and_continue`` sleeps 0.5 s per bad sample): tar/IO errors as ``tar_error``,
sample problems by the reasons of ``decode.py``; the counts ride on the next ``Batch.skipped``.
``MAX_CONSECUTIVE_BAD`` errors in a row without a good sample (shards that are all broken, or
all filtered out) end the stream with a one-line :class:`UserError` instead of spinning forever.
"""

from __future__ import annotations

import numpy as np
from torch.utils.data import IterableDataset, get_worker_info

from ldm_vs_gan.data import config
from ldm_vs_gan.data.decode import DecodeOptions, Skip, decode_sample, skipped_in_a_row
from ldm_vs_gan.data.indexed import _SALT, MAX_CONSECUTIVE_BAD, Failure, SkipMerging, collate, make_loader
from ldm_vs_gan.data.shards import _some, expand_shards
from ldm_vs_gan.errors import UserError, bad_value


def split_by_node(urls: list[str], rank: int, world_size: int) -> list[str]:
    """Rank r takes shards r, r+W, ... (webdataset's split_by_node, with the rank passed in
    rather than read from the environment, so it is testable in one process)."""
    return urls[rank::world_size]


def split_by_worker(urls: list[str]) -> list[str]:
    info = get_worker_info()
    return urls if info is None else urls[info.id :: info.num_workers]


class StreamDataset(IterableDataset):
    def __init__(
        self,
        urls: list[str],
        opts: DecodeOptions,
        *,
        batch_size: int,
        rank: int,
        world_size: int,
        seed: int,
        start_images_seen: int,
        resampled: bool,
        shuffle_buffer: int,
        endless: bool,
    ):
        self.urls, self.opts, self.b = list(urls), opts, batch_size
        self.rank, self.world, self.seed, self.start = rank, world_size, int(seed), int(start_images_seen)
        self.resampled, self.buffer, self.endless = resampled, shuffle_buffer, endless
        self.skipped: dict[str, int] = {}
        self._run: dict[str, int] = {}  # errors since the last good sample

    def _count(self, reason: str) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + 1
        self._run[reason] = self._run.get(reason, 0) + 1

    def _check_run(self) -> None:
        """Ends an endless stream that finds no good sample (checked out here, not in the
        webdataset handler: webdataset appends to the args of exceptions passing through it)."""
        if self.endless and sum(self._run.values()) >= MAX_CONSECUTIVE_BAD:
            raise skipped_in_a_row(sum(self._run.values()), self._run, _some(self.urls), self.opts)

    def _handler(self, exn: Exception) -> bool:
        """webdataset handler: count and continue (no sleeping, no warning spam)."""
        self._count("tar_error")
        return True

    def _shards(self, rng: np.random.Generator):
        """This (rank, worker)'s shard URLs, in reading order."""
        if self.resampled and self.endless:
            while True:
                yield self.urls[rng.integers(len(self.urls))]
        epoch = 0
        while True:
            urls = list(self.urls)
            if self.endless:  # the same shard order on every rank: the split stays a partition
                np.random.default_rng([self.seed, epoch, _SALT + 2]).shuffle(urls)
            mine = split_by_worker(split_by_node(urls, self.rank, self.world))
            if not mine:  # more (rank, worker) pairs than shards: this worker has none
                return
            yield from mine
            epoch += 1
            if not self.endless:
                return

    def _raw_samples(self, rng: np.random.Generator):
        import webdataset as wds

        for url in self._shards(rng):
            yield from wds.tarfile_samples([{"url": url}], handler=self._handler)
            self._check_run()

    def _shuffled(self, it, rng: np.random.Generator):
        if not self.endless or self.buffer <= 1:
            yield from it
            return
        buf = []
        for s in it:
            if len(buf) < self.buffer:
                buf.append(s)
                continue
            j = int(rng.integers(len(buf)))
            buf[j], s = s, buf[j]
            yield s
        rng.shuffle(buf)
        yield from buf

    def __iter__(self):
        try:
            yield from self._batches()
        except UserError as e:
            yield Failure(e)  # raised as itself in the main process, one line

    def _batches(self):
        info = get_worker_info()
        wid = 0 if info is None else info.id
        rng = np.random.default_rng([self.seed, self.rank, wid, self.start, _SALT + 3])
        self.skipped, self._run = {}, {}
        samples = []
        for raw in self._shuffled(self._raw_samples(rng), rng):
            try:
                samples.append(decode_sample(raw, self.opts, rng))
            except Skip as e:
                self._count(e.args[0])
                self._check_run()
                continue
            self._run = {}
            if len(samples) == self.b:
                yield collate(samples, self.skipped, self.opts.resolution)
                samples, self.skipped = [], {}
        if samples or self.skipped:  # the last partial batch of a finite pass
            yield collate(samples, self.skipped, self.opts.resolution)


def build_stream_loader(
    data_cfg,
    opts: DecodeOptions,
    *,
    split: str,
    batch_size: int,
    rank: int,
    world_size: int,
    seed: int,
    start_images_seen: int,
    num_workers: int,
):
    c = config.read(data_cfg, "laion")
    key = "shards" if split == "train" else "heldout_shards"
    urls = expand_shards(getattr(c, key) or [])
    if not urls:
        raise UserError(f"data.{key} is not set or matches no shard")
    resampled = c.resampled
    if split == "train" and not resampled and len(urls) < world_size:
        raise bad_value("data.resampled", False, f"true (only {len(urls)} shard(s) for {world_size} ranks)")
    shuffle_buffer = c.shuffle_buffer  # >= 0: checked by the schema
    ds = StreamDataset(
        urls,
        opts,
        batch_size=batch_size,
        rank=rank,
        world_size=world_size,
        seed=seed,
        start_images_seen=start_images_seen,
        resampled=resampled,
        shuffle_buffer=shuffle_buffer,
        endless=split == "train",
    )
    # batches are assembled inside the workers (batch_size=None): workers with no shard simply end
    loader = make_loader(
        ds,
        seed_parts=[seed, rank, start_images_seen],
        num_workers=num_workers,
        batch_size=None,
        prefetch_factor=2,
    )
    return SkipMerging(loader)


__all__ = ["StreamDataset", "build_stream_loader", "split_by_node", "split_by_worker"]
