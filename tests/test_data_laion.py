"""The webdataset loader on shards the test writes: broken samples are skipped and counted by
reason (both loaders), epoch-mode streaming splits shards exactly once across ranks and workers,
stream resumption is seeded, and fewer shards than workers works."""

import io
import struct
import tarfile
import zlib

import pytest
from PIL import Image

from ldm_vs_gan.data import build_loader
from ldm_vs_gan.data.shards import ShardWriter


def jpeg(size=(80, 60), color=(200, 30, 30), mode="RGB"):
    buf = io.BytesIO()
    img = Image.new(mode, size, color if mode == "RGB" else (color[0] if mode == "L" else color + (0,)))
    img.save(buf, format="JPEG" if mode in ("RGB", "L", "CMYK") else "PNG")
    return buf.getvalue()


def png_bomb(side=100_000):
    """A tiny PNG whose header claims side x side pixels (10^10): a decompression bomb."""

    def chunk(tag, data):
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))

    ihdr = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\0" * 100))
        + chunk(b"IEND", b"")
    )


GOOD = 6
BROKEN = {  # reason -> sample (minus key)
    "undecodable": {"jpg": b"not a jpeg at all", "txt": "a caption"},
    "no_caption": {"jpg": jpeg()},
    "empty_caption": {"jpg": jpeg(), "txt": "   \n"},
    "bad_text": {"jpg": jpeg(), "txt": b"\xff\xfe caption"},
    "too_small": {"jpg": jpeg((20, 20)), "txt": "tiny"},
    "too_large": {"png": png_bomb(), "txt": "bomb"},
    "no_image": {"txt": "a caption without an image"},
    "bad_aspect": {"jpg": jpeg((200, 40)), "txt": "a panorama"},
}


def write_broken(folder, truncate=True):
    path = str(folder / "broken-%06d.tar")
    with ShardWriter(path, maxcount=100) as w:
        i = 0
        for _ in range(GOOD // 2):
            w.write({"__key__": f"{i:04d}", "jpg": jpeg(), "txt": "a red picture", "json": {"w": 80}})
            i += 1
        for reason, s in BROKEN.items():
            w.write({"__key__": f"{i:04d}-{reason}", **s})
            i += 1
        w.write({"__key__": f"{i:04d}-gray", "jpg": jpeg(mode="L"), "txt": "a gray picture"})  # converted
        w.write({"__key__": f"{i + 1:04d}-alpha", "png": jpeg(mode="RGBA"), "txt": "with alpha"})
        i += 2
        for _ in range(GOOD // 2 - 2):
            w.write({"__key__": f"{i:04d}", "jpg": jpeg(), "txt": "a red picture"})
            i += 1
    shard = folder / "broken-000000.tar"
    if truncate:  # a last sample cut in the middle of its image: read up to the damage
        with tarfile.open(shard, "a") as tar:
            data = jpeg((300, 300))
            info = tarfile.TarInfo("9999.jpg")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        with tarfile.open(shard) as tar:
            cut = tar.getmember("9999.jpg").offset_data + len(data) // 2
        shard.write_bytes(shard.read_bytes()[:cut])
    return shard


def cfg_for(shards, **kw):
    cfg = {
        "name": "laion",
        "resolution": 32,
        "shards": shards,
        "heldout_shards": shards,
        "min_size": 32,
        "max_aspect": 3.0,
        "max_pixels": 10_000_000,
        "num_workers": 0,
    }
    cfg.update(kw)
    return cfg


@pytest.mark.parametrize("mode", ["indexed", "stream"])
def test_broken_shard_is_read_to_the_end_with_counts(tmp_path, mode):
    shard = write_broken(tmp_path)
    loader = build_loader(cfg_for(str(shard), mode=mode), split="heldout", batch_size=4)
    assert loader.damaged == ({"tar_error": 1} if mode == "indexed" else {})  # the cut tail
    batches = list(loader)
    skipped = {}
    for b in batches:
        for k, v in b.skipped.items():
            skipped[k] = skipped.get(k, 0) + v
    skipped.pop("tar_error", None)  # the stream reader may also see the cut tail as a tar error
    assert skipped == {r: 1 for r in BROKEN}
    n = sum(len(b) for b in batches)
    assert n == GOOD  # the good ones, gray and alpha converted, the truncated tail dropped
    assert all(len(b) for b in batches[:-1]) and all(b.images.shape[1:] == (3, 32, 32) for b in batches)
    batches = [b for b in batches if len(b)]  # a final empty batch may carry the last counts
    assert all(-1 <= float(b.images.min()) and float(b.images.max()) <= 1 for b in batches)


def test_skip_mode_and_json_captions(tmp_path):
    shard = write_broken(tmp_path, truncate=False)
    bs = list(build_loader(cfg_for(str(shard), image_modes="skip"), split="heldout", batch_size=64))
    assert bs[0].skipped.get("bad_mode") == 2
    bs = list(
        build_loader(cfg_for(str(shard), caption="json", caption_field="w"), split="heldout", batch_size=64)
    )
    assert bs[0].captions == ["80"] * 3  # only the samples whose .json has the field


def test_train_stream_replaces_broken_samples_deterministically(tmp_path):
    shard = write_broken(tmp_path)
    it = iter(build_loader(cfg_for(str(shard)), split="train", batch_size=8, seed=0))
    b = next(it)
    assert len(b) == 8 and sum(b.skipped.values()) > 0


def write_clean(folder, n_shards, per_shard):
    keys = []
    with ShardWriter(str(folder / "clean-%06d.tar"), maxcount=per_shard) as w:
        for i in range(n_shards * per_shard):
            w.write({"__key__": f"s{i:05d}", "jpg": jpeg((40, 40), (i % 250, 10, 10)), "txt": f"sample {i}"})
            keys.append(f"s{i:05d}")
    return str(folder / f"clean-{{000000..{n_shards - 1:06d}}}.tar"), keys


@pytest.mark.parametrize("world_size,workers", [(1, 2), (2, 2), (3, 1)])
def test_epoch_stream_reads_each_sample_once_across_ranks_and_workers(tmp_path, world_size, workers):
    spec, keys = write_clean(tmp_path, n_shards=5, per_shard=7)
    got = []
    for r in range(world_size):
        cfg = cfg_for(spec, mode="stream", min_size=0)
        for b in build_loader(
            cfg, split="heldout", batch_size=3, rank=r, world_size=world_size, num_workers=workers
        ):
            got += b.keys
    assert sorted(got) == keys


def test_fewer_shards_than_workers(tmp_path):
    spec, keys = write_clean(tmp_path, n_shards=1, per_shard=10)
    cfg = cfg_for(spec, mode="stream", min_size=0)
    got = [k for b in build_loader(cfg, split="heldout", batch_size=4, num_workers=2) for k in b.keys]
    assert sorted(got) == keys
    it = iter(build_loader(cfg, split="train", batch_size=4, num_workers=2))
    assert all(len(next(it)) == 4 for _ in range(6))  # endless, resampled


def test_stream_is_seeded_by_seed_and_images_seen(tmp_path):
    spec, _ = write_clean(tmp_path, n_shards=3, per_shard=10)
    cfg = cfg_for(spec, mode="stream", min_size=0, shuffle_buffer=8)

    def first(**kw):
        it = iter(build_loader(cfg, split="train", batch_size=5, **kw))
        return [k for _ in range(4) for k in next(it).keys]

    assert first(seed=1) == first(seed=1)
    assert first(seed=1) != first(seed=2)
    assert first(seed=1, start_images_seen=20) != first(seed=1)


def test_missing_shards_name_the_key(tmp_path):
    from ldm_vs_gan.errors import UserError

    with pytest.raises(UserError, match="data.shards"):
        build_loader(cfg_for(str(tmp_path / "nope-{000..003}.tar")), split="train", batch_size=2)
    with pytest.raises(UserError, match="data.shards"):
        build_loader(cfg_for(None), split="train", batch_size=2)
