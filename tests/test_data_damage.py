"""Damaged input through the real loader: broken tars and duplicate keys are counted by reason
(never dropped silently), high-depth images decode to the right 8-bit values, errors raised in
DataLoader workers arrive as one line, iter() leaves the global torch RNG alone, workers ignore
SIGTERM, and non-numeric data keys are one-line config errors."""

import io
import os
import signal
import tarfile
import time

import numpy as np
import pytest
import torch
from PIL import Image
from test_data_laion import cfg_for, jpeg

from ldm_vs_gan.data import build_loader, heldout_batch
from ldm_vs_gan.data.shards import ShardIndex, ShardWriter, scan_tar
from ldm_vs_gan.errors import ConfigError, UserError


def write(path, keys, size=(40, 40)):
    with ShardWriter(str(path).replace(".tar", "-%d.tar"), maxcount=len(keys)) as w:
        for k in keys:
            w.write({"__key__": k, "jpg": jpeg(size), "txt": f"caption {k}"})
    os.replace(str(path).replace(".tar", "-0.tar"), path)
    return str(path)


def cut(path, at):
    with open(path, "rb") as f:
        data = f.read()
    with open(path, "wb") as f:
        f.write(data[:at])


def member(path, name):
    with tarfile.open(path) as tar:
        m = tar.getmember(name)
        return m.offset, m.offset_data, m.size


@pytest.fixture
def damaged_set(tmp_path):
    """Shards: 5 good samples, a non-tar, a 0-byte file, a tar of 20 cut mid-member after 12
    samples, a tar of 20 cut at the member boundary after 15; the keys that can still be read."""
    good = write(tmp_path / "a-good.tar", [f"g{i}" for i in range(5)])
    (tmp_path / "b-nottar.tar").write_bytes(b"<html>404 not found</html>\n" * 40)
    (tmp_path / "c-empty.tar").write_bytes(b"")
    mid = write(tmp_path / "d-mid.tar", [f"m{i:02d}" for i in range(20)])
    _, data, size = member(mid, "m12.jpg")
    cut(mid, data + size // 2)  # 8 of 20 samples gone, one of them half there
    edge = write(tmp_path / "e-edge.tar", [f"e{i:02d}" for i in range(20)])
    cut(edge, member(edge, "e15.jpg")[0])  # tarfile stops here without an error
    keys = [f"g{i}" for i in range(5)] + [f"m{i:02d}" for i in range(12)] + [f"e{i:02d}" for i in range(15)]
    return [good, str(tmp_path / "b-nottar.tar"), str(tmp_path / "c-empty.tar"), mid, edge], keys


def test_damaged_files_are_counted_once_each_and_intact_samples_read(damaged_set):
    paths, keys = damaged_set
    index = ShardIndex(paths)
    assert index.damaged == {"tar_error": 4}
    assert index.damaged_files == paths[1:]
    loader = build_loader(cfg_for(paths), split="heldout", batch_size=7)
    assert loader.damaged == {"tar_error": 4}
    assert [k for b in loader for k in b.keys] == keys
    train = build_loader(cfg_for(paths), split="train", batch_size=4)
    assert train.damaged == {"tar_error": 4} and len(next(iter(train))) == 4


def test_damage_keeps_the_index_deterministic(damaged_set):
    paths, keys = damaged_set
    first = ShardIndex(paths)
    cached = ShardIndex(paths)  # from the cached index files
    for p in paths:
        os.remove(p + ".idx.json")
    rescanned = ShardIndex(paths)
    assert first.entries == cached.entries == rescanned.entries
    assert [k for _, k, _ in first.entries] == keys
    assert first.damaged == cached.damaged == rescanned.damaged == {"tar_error": 4}


def test_duplicate_keys_are_counted_and_the_first_kept(tmp_path):
    path = tmp_path / "dup.tar"
    members = [("a", "first a"), ("b", "b"), ("a", "second a"), ("c", "c"), ("c", "second c")]
    with tarfile.open(path, "w") as tar:
        for key, caption in members:
            for ext, data in (("jpg", jpeg()), ("txt", caption.encode())):
                info = tarfile.TarInfo(f"{key}.{ext}")
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    loader = build_loader(cfg_for(str(path)), split="heldout", batch_size=8)
    assert loader.damaged == {"duplicate_key": 2}
    (b,) = list(loader)
    assert b.keys == ["a", "b", "c"] and b.captions == ["first a", "b", "c"]
    # the writer's own index says the same as a scan of what it wrote
    with ShardWriter(str(tmp_path / "w-%d.tar")) as w:
        for key, caption in members:
            w.write({"__key__": key, "jpg": jpeg(), "txt": caption})
    written = ShardIndex([w.paths[0]])
    assert [k for _, k, _ in written.entries] == ["a", "b", "c"] and written.damaged == {"duplicate_key": 2}
    samples, damaged = scan_tar(w.paths[0])
    assert [s["key"] for s in samples] == [k for _, k, _ in written.entries] and damaged == written.damaged


def test_heldout_batch_counts_damaged_shards(tmp_path):
    good = write(tmp_path / "good.tar", ["k0", "k1", "k2"])
    small = write(tmp_path / "small.tar", ["tiny"], size=(20, 20))
    broken = tmp_path / "broken.tar"
    broken.write_bytes(b"garbage" * 100)
    b = heldout_batch(cfg_for([good, small, str(broken)]), n=4)
    assert b.keys == ["k0", "k1", "k2"]
    assert b.skipped == {"tar_error": 1, "too_small": 1}


def test_all_damaged_is_one_line_error_naming_the_files(tmp_path):
    (tmp_path / "x.tar").write_bytes(b"")
    (tmp_path / "y.tar").write_bytes(b"not a tar at all" * 64)
    cfg = cfg_for(str(tmp_path / "*.tar"))
    for call in (
        lambda: build_loader(cfg, split="train", batch_size=2),
        lambda: heldout_batch(cfg, n=1),
    ):
        with pytest.raises(UserError) as e:
            call()
        msg = str(e.value)
        assert "\n" not in msg and "x.tar" in msg and "y.tar" in msg and "damaged" in msg


def png(array):
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


def test_high_depth_and_other_modes_decode_to_sane_rgb(tmp_path):
    ramp8 = np.tile(np.arange(0, 256, 4, dtype=np.uint8), (64, 1))
    ramp16 = ramp8.astype(np.uint16) * 257 + 100  # 16-bit samples, not at multiples of 257
    tiff = io.BytesIO()
    Image.fromarray(np.full((48, 48), 0.5, dtype=np.float32)).save(tiff, format="TIFF")
    cmyk = io.BytesIO()
    Image.new("CMYK", (48, 48), (0, 255, 255, 0)).save(cmyk, format="JPEG", quality=95)
    pal = Image.new("P", (48, 48), 0)
    pal.putpalette([10, 200, 10] + [0] * 765)
    pal_png = io.BytesIO()
    pal.save(pal_png, format="PNG")
    images = {
        "gray8": png(ramp8),
        "gray16": png(ramp16),
        "la": png(np.stack([np.full((48, 48), 100, np.uint8), np.full((48, 48), 128, np.uint8)], -1)),
        "rgba": png(np.tile(np.array([200, 30, 30, 255], np.uint8), (48, 48, 1))),
        "p": pal_png.getvalue(),
        "cmyk": cmyk.getvalue(),
        "float": tiff.getvalue(),  # a TIFF in a .png member: PIL reads it by its content
    }
    with ShardWriter(str(tmp_path / "modes-%d.tar")) as w:
        for key, raw in images.items():
            w.write({"__key__": key, "png": raw, "txt": key})
    assert Image.open(io.BytesIO(images["gray16"])).mode == "I;16"  # a real 16-bit PNG
    b = heldout_batch(cfg_for(str(tmp_path / "modes-0.tar")), n=len(images))
    assert not b.skipped and b.keys == list(images)
    px = ((b.images + 1) * 127.5).round().to(torch.int64)  # back to 0..255
    got = dict(zip(b.keys, px))
    assert got["gray16"].float().mean() < 200  # not the white image of a clipping convert
    assert (got["gray16"] - got["gray8"]).abs().max() <= 1
    assert (got["la"] - 177).abs().max() <= 1  # 100 at alpha 128/255 over white
    assert got["rgba"][:, 0, 0].tolist() == [200, 30, 30]
    assert got["p"][:, 0, 0].tolist() == [10, 200, 10]
    assert (got["cmyk"][:, 16, 16] - torch.tensor([255, 0, 0])).abs().max() <= 8
    assert (got["float"] - 128).abs().max() <= 1


@pytest.mark.parametrize("mode", ["indexed", "stream"])
@pytest.mark.parametrize("workers", [0, 2])
def test_only_filtered_samples_is_one_line_error_naming_the_key(tmp_path, mode, workers):
    shard = write(tmp_path / "small.tar", [f"s{i}" for i in range(6)], size=(20, 20))
    loader = build_loader(cfg_for(shard, mode=mode, num_workers=workers), split="train", batch_size=2)
    with pytest.raises(UserError) as e:
        next(iter(loader))
    msg = str(e.value)
    assert "\n" not in msg and "Traceback" not in msg and "worker" not in msg
    assert "samples in a row were skipped" in msg and "data.min_size=32" in msg and "too_small" in msg
    assert "check the shards" not in msg  # they are filtered by a setting, not corrupt


def test_only_corrupt_samples_says_check_the_shards(tmp_path):
    path = tmp_path / "bad-%d.tar"
    with ShardWriter(str(path)) as w:
        for i in range(4):
            w.write({"__key__": f"b{i}", "jpg": b"not an image", "txt": "x"})
    loader = build_loader(cfg_for(str(tmp_path / "bad-0.tar"), num_workers=2), split="train", batch_size=2)
    with pytest.raises(UserError, match=r"^4 samples in a row .*undecodable.*check the shards$"):
        next(iter(loader))


@pytest.mark.parametrize("mode", ["indexed", "stream"])
@pytest.mark.parametrize("workers", [0, 2])
def test_iter_leaves_the_global_torch_rng_alone(tmp_path, mode, workers):
    shard = write(tmp_path / "ok.tar", [f"k{i}" for i in range(8)])
    loader = build_loader(cfg_for(shard, mode=mode, num_workers=workers), split="train", batch_size=2)
    torch.manual_seed(123)
    state = torch.get_rng_state()
    it = iter(loader)
    assert len(next(it)) == 2
    assert torch.equal(state, torch.get_rng_state())
    assert loader.damaged == {}


@pytest.mark.parametrize("mode", ["indexed", "stream"])
def test_workers_ignore_sigterm(tmp_path, mode):
    shard = write(tmp_path / "ok.tar", [f"k{i}" for i in range(8)])
    loader = build_loader(cfg_for(shard, mode=mode, num_workers=2), split="train", batch_size=2)
    it = iter(loader.loader)  # the DataLoader inside: its iterator lists the worker processes
    for _ in range(4):  # batches come from both workers in turn: both have run worker_init_fn
        assert len(next(it)) == 2
    for w in it._workers:
        os.kill(w.pid, signal.SIGTERM)
    time.sleep(0.5)
    assert all(w.is_alive() for w in it._workers)
    for _ in range(8):
        assert len(next(it)) == 2


@pytest.mark.parametrize(
    "key,value",
    [
        ("resolution", "abc"),
        ("min_size", "big"),
        ("num_workers", "two"),
        ("max_aspect", "wide"),
        ("max_pixels", 1.5),
        ("hflip", "maybe"),
        ("resolution", None),
    ],
)
def test_non_numeric_data_keys_are_one_line_config_errors(tmp_path, key, value):
    shard = write(tmp_path / "ok.tar", ["k0"])
    cfg = cfg_for(shard, **{key: value})
    if value is None:  # unset: the default applies
        assert len(heldout_batch(cfg, n=1)) == 1
        return
    calls = [lambda: build_loader(cfg, split="train", batch_size=1)]
    if key != "num_workers":  # heldout_batch reads in the main process
        calls.append(lambda: heldout_batch(cfg, n=1))
    for call in calls:
        with pytest.raises(ConfigError) as e:
            call()
        msg = str(e.value)  # "data.<key>: ..." (a wrong type) names the key like "data.<key>=..."
        assert (f"data.{key}=" in msg or f"data.{key}:" in msg) and "\n" not in msg
