"""The data pipeline (docs/CONTRACTS.md, "Data"): one entry point for every source.

``data.name`` picks the source: ``laion`` (webdataset shards: local paths, globs, brace patterns
or URLs), ``coco`` (a local COCO captions folder), ``folder`` (images with sidecar captions), or a
plug-in's (``ldm_vs_gan.plugins`` kind ``data``; the toy world registers ``toy``). Local sources go through the exact indexed loader
(``indexed.py``: the stream is a pure function of (seed, images_seen)); remote URLs, or
``data.mode: stream``, go through a webdataset pipeline (``stream.py``: resumption reseeds from
(seed, rank, images_seen), statistically but not bitwise equivalent).
"""

from __future__ import annotations

from ldm_vs_gan.data import config
from ldm_vs_gan.data.batch import Batch
from ldm_vs_gan.data.decode import DecodeOptions
from ldm_vs_gan.errors import UserError, bad_value

SOURCES = ("laion", "coco", "folder")  # built in; plug-ins add theirs (sources())
SPLITS = ("train", "heldout")

__all__ = [
    "Batch",
    "build_loader",
    "heldout_batch",
    "build_source",
    "check_config",
    "probe",
    "sources",
    "SOURCES",
]


def sources() -> tuple[str, ...]:
    """Every ``data.name``: the built-in sources and the plug-ins'."""
    return tuple(config.schemas())


def check_config(data_cfg) -> None:
    """Every ``data`` value that can be checked without reading data (types, ranges, allowed
    values): the trainer calls it before any work, so a bad value is one line naming its key.
    The node is read by the schema of its ``data.name`` (``data/config.py``); a name that is no
    source is left to the loader's own ``data.name`` error."""
    if config.name_of(data_cfg) in config.schemas():
        config.read(data_cfg)


def _shard_spec(c: config.LaionData, split: str):
    key = "shards" if split == "train" else "heldout_shards"
    spec = getattr(c, key)
    if not spec:
        raise UserError(
            f"data.{key} is not set: give the {split} shards as a path, glob, brace pattern "
            f"(data-{{00000..00099}}.tar) or URL list"
        )
    return spec


def build_source(data_cfg, split: str):
    """The random-access source of a local split: ``len()`` and ``read(i) -> {ext: bytes}``.
    None when the split is remote (or ``data.mode: stream``) and must be streamed."""
    if split not in SPLITS:
        raise bad_value("split", split, SPLITS)
    c = config.read(data_cfg)
    name = c.name
    if name == "laion":
        from ldm_vs_gan.data.shards import ShardIndex, expand_shards, is_remote

        paths = expand_shards(_shard_spec(c, split))
        mode = c.mode
        remote = any(is_remote(p) for p in paths)
        if mode == "stream" or (mode == "auto" and remote):
            return None
        if remote:
            raise bad_value("data.mode", mode, ["auto", "stream (the shards are URLs)"])
        missing = [p for p in paths if not __import__("os").path.isfile(p)]
        if not paths or missing:
            key = "shards" if split == "train" else "heldout_shards"
            raise UserError(
                f"data.{key}: shard file(s) not found: {(missing or [str(getattr(c, key) or '')])[:3]}"
            )
        return ShardIndex(paths, in_memory=c.in_memory)
    if name == "coco":
        from ldm_vs_gan.data.coco import CocoSource

        return CocoSource.from_config(c, split)
    if name == "folder":
        from ldm_vs_gan.data.folder import FolderSource

        return FolderSource.from_config(c, split)
    from ldm_vs_gan import plugins

    return plugins.get("data", name, "data.name", SOURCES).open(c, split)


_SAID: set[int] = set()


def capped_workers(asked: int) -> int:
    """``data.num_workers``, at most the CPU cores this process may use (more workers than cores
    only compete for them; the stream does not depend on the worker count). Said once."""
    import os
    import sys

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    if asked <= cores:
        return asked
    if asked not in _SAID:
        _SAID.add(asked)
        print(
            f"ldm_vs_gan: data.num_workers={asked} > {cores} CPU cores here: using {cores}", file=sys.stderr
        )
    return cores


def build_loader(
    data_cfg,
    *,
    split: str,
    batch_size: int,
    rank: int = 0,
    world_size: int = 1,
    seed: int = 0,
    start_images_seen: int = 0,
    num_workers: int | None = None,
):
    """An iterable of :class:`Batch` for this rank (docs/CONTRACTS.md, "Data").

    ``split="train"``: an endless stream; global step k holds global stream positions
    ``[start_images_seen + k*G, start_images_seen + (k+1)*G)`` with ``G = batch_size*world_size``,
    rank r the r-th contiguous slice of ``batch_size``. ``split="heldout"``: one pass in file
    order (no shuffling, no augmentation randomness beyond the seed), then it ends.
    The loader's ``damaged`` dict counts the damage found while indexing local shards, by reason
    (``tar_error`` per damaged file, ``duplicate_key`` per repeated key; empty when there is none
    and for streamed data, which counts it per batch in ``Batch.skipped``).
    """
    if batch_size <= 0:
        raise bad_value("batch_size", batch_size, "a positive integer")
    if not 0 <= rank < world_size:
        raise bad_value("rank", rank, f"0..{world_size - 1}")
    c = config.read(data_cfg)
    if num_workers is None:
        num_workers = c.num_workers
    if num_workers < 0:
        raise bad_value("data.num_workers", num_workers, "0 (read in the main process) or more")
    num_workers = capped_workers(num_workers)
    opts = DecodeOptions.from_config(c)
    source = build_source(c, split)
    if source is None:
        from ldm_vs_gan.data.stream import build_stream_loader

        return build_stream_loader(
            c,
            opts,
            split=split,
            batch_size=batch_size,
            rank=rank,
            world_size=world_size,
            seed=seed,
            start_images_seen=start_images_seen,
            num_workers=num_workers,
        )
    from ldm_vs_gan.data.indexed import build_indexed_loader

    cache_decoded = getattr(c, "cache_decoded", False)  # a key of the toy world's schema
    return build_indexed_loader(
        source,
        opts,
        split=split,
        batch_size=batch_size,
        rank=rank,
        world_size=world_size,
        seed=seed,
        start_images_seen=start_images_seen,
        num_workers=num_workers,
        cache_decoded=cache_decoded,
    )


def heldout_batch(data_cfg, n: int, offset: int = 0) -> Batch:
    """The held-out samples ``[offset, offset+n)`` in file order, as one :class:`Batch`
    (deterministic: the fixed prompt panel, quick evaluation, the evaluation prompt set).
    Corrupt samples are dropped and counted in ``skipped`` (the batch is then shorter), and so is
    the damage found while indexing the held-out shards (``tar_error``, ``duplicate_key``)."""
    from ldm_vs_gan.data.indexed import PositionDataset

    c = config.read(data_cfg)
    opts = DecodeOptions.from_config(c)
    source = build_source(c, "heldout")
    if source is None:
        raise bad_value("data.mode", "stream", ["indexed (heldout_batch needs local held-out shards)"])
    if offset < 0 or n < 0 or offset + n > len(source):
        from ldm_vs_gan import plugins

        key = getattr(plugins.find("data", c.name), "heldout_key", "heldout_shards")
        raise UserError(
            f"heldout_batch asks for samples [{offset}, {offset + n}) but the held-out split has "
            f"{len(source)}: raise data.{key} or ask for fewer"
        )
    ds = PositionDataset(source, opts, seed=0, shuffle=False)
    batch = ds.batch(list(range(offset, offset + n)))
    for reason, k in getattr(source, "damaged", {}).items():
        batch.skipped[reason] = batch.skipped.get(reason, 0) + k
    return batch


def probe(data_cfg, n: int = 64) -> dict[str, int]:
    """Decode the first ``n`` training samples in file order, before any training: skip counts by
    reason. When none survives (every image filtered out, say by ``data.min_size``), the one-line
    error names the keys behind the reasons; when a filter drops some, it is said on the console.
    Streamed data is not probed (its first shard may be slow to reach)."""
    import sys

    from ldm_vs_gan.data.decode import ADVICE, Skip, decode_sample, skipped_in_a_row

    c = config.read(data_cfg)
    source = build_source(c, "train")
    if source is None or len(source) == 0:
        return {}
    opts = DecodeOptions.from_config(c)
    counts: dict[str, int] = {}
    seen = min(n, len(source))
    kept = 0
    for i in range(seen):
        try:
            decode_sample(source.read(i), opts, None)
            kept += 1
        except Skip as e:
            counts[str(e)] = counts.get(str(e), 0) + 1
    if kept == 0:
        raise skipped_in_a_row(seen, counts, "the first training samples", opts)
    for reason, k in counts.items():
        if reason in ADVICE:
            print(
                f"ldm_vs_gan: {k} of the first {seen} training samples are skipped ({reason}): "
                f"{ADVICE[reason](opts)}",
                file=sys.stderr,
            )
    return counts
