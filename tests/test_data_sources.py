"""COCO and image-folder sources on fixtures the tests write, and the shard writer CLI."""

import json

import pytest
import torch
from PIL import Image

from ldm_vs_gan.data import build_loader, heldout_batch
from ldm_vs_gan.data.make_shards import main as make_shards
from ldm_vs_gan.errors import UserError


def write_coco(root, n_images=6):
    (root / "annotations").mkdir(parents=True)
    (root / "val2014").mkdir()
    images, anns = [], []
    for i in range(n_images):
        name = f"COCO_val2014_{i:012d}.jpg"
        Image.new("RGB", (64 + 8 * i, 48), (10 * i, 100, 200)).save(root / "val2014" / name)
        images.append({"id": i, "file_name": name})
        anns += [{"image_id": i, "id": 10 * i + k, "caption": f"image {i} caption {k}"} for k in range(5)]
    (root / "annotations" / "captions_val2014.json").write_text(
        json.dumps({"images": images, "annotations": anns})
    )


def test_coco_heldout_is_a_seeded_choice_with_one_caption_each(tmp_path):
    write_coco(tmp_path)
    cfg = {"name": "coco", "root": str(tmp_path), "n": 4, "resolution": 32, "num_workers": 0}
    b = heldout_batch(cfg, 4)
    assert b.images.shape == (4, 3, 32, 32)
    ids = [int(k) for k in b.keys]
    assert len(set(ids)) == 4
    assert all(c.startswith(f"image {i} caption") for i, c in zip(ids, b.captions))
    assert heldout_batch(cfg, 4).captions == b.captions  # deterministic
    assert heldout_batch({**cfg, "choice_seed": 1}, 4).keys != b.keys
    tr = next(iter(build_loader(cfg, split="train", batch_size=20)))
    assert len(set(tr.captions)) == 20  # every caption of the 4 chosen images


def test_coco_missing_folder_names_the_key(tmp_path):
    with pytest.raises(UserError, match="data.root"):
        heldout_batch({"name": "coco", "root": str(tmp_path / "nope"), "resolution": 32}, 1)


def test_folder_sidecar_and_instance_prompt(tmp_path):
    for i in range(3):
        Image.new("RGB", (40, 40), (i * 50, 0, 0)).save(tmp_path / f"img{i}.png")
    (tmp_path / "img0.txt").write_text("a red square\n")
    (tmp_path / "img1.txt").write_text("a darker square")
    cfg = {"name": "folder", "root": str(tmp_path), "resolution": 16, "num_workers": 0}
    b = next(iter(build_loader(cfg, split="heldout", batch_size=8)))
    assert b.captions == ["a red square", "a darker square"] and b.skipped == {"no_caption": 1}
    b = heldout_batch({**cfg, "instance_prompt": "a photo of sks square"}, 3)
    assert b.captions == ["a photo of sks square"] * 3 and b.images.shape == (3, 3, 16, 16)


def test_make_shards_round_trip(tmp_path):
    write_coco(tmp_path / "coco")
    assert make_shards([str(tmp_path / "coco"), str(tmp_path / "out"), "--n", "5", "--shard-size", "2"]) == 0
    shards = sorted((tmp_path / "out").glob("shard-*.tar"))
    assert len(shards) == 3
    # min_size 0: the shipped LAION default (64 px) would skip these small test images
    cfg = {
        "name": "laion",
        "resolution": 32,
        "min_size": 0,
        "heldout_shards": str(tmp_path / "out" / "shard-*.tar"),
    }
    via_shards = heldout_batch(cfg, 5)
    direct = heldout_batch({"name": "coco", "root": str(tmp_path / "coco"), "n": 5, "resolution": 32}, 5)
    assert via_shards.captions == direct.captions and via_shards.keys == direct.keys
    assert (via_shards.images == direct.images).all()
    assert make_shards([str(tmp_path / "missing"), str(tmp_path / "o2")]) == 2


def test_coco_eval_set(tmp_path, monkeypatch):
    from ldm_vs_gan.data import coco

    write_coco(tmp_path)
    monkeypatch.setenv("LDM_VS_GAN_COCO", str(tmp_path))
    ev = coco.eval_set(n=3, seed=0, resolution=32)
    imgs = ev.images()
    assert imgs.dtype == torch.uint8 and imgs.shape == (3, 3, 32, 32) and len(ev.captions) == 3
    monkeypatch.delenv("LDM_VS_GAN_COCO")
    with pytest.raises(UserError, match="data.root"):
        coco.eval_set(n=3)


def test_num_workers_are_capped_by_the_cores_present(capsys):
    import os

    from ldm_vs_gan.data import capped_workers

    cores = len(os.sched_getaffinity(0))
    assert capped_workers(cores) == cores and capped_workers(0) == 0
    assert capped_workers(cores + 7) == cores
    assert f"data.num_workers={cores + 7} > {cores} CPU cores here: using {cores}" in capsys.readouterr().err
