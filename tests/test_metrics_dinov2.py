"""The DINOv2 feature space (FD-DINOv2, Stein et al. 2023) without network: a fake local hub repo
whose hubconf builds a tiny ViT-like net, weights the test saves, the extractor's features and
provenance, dgm-eval's preprocessing, ``--feature dinov2`` through the eval CLI, and the one-line
errors for a missing clone or weights file."""

import json
import time

import numpy as np
import pytest
import torch
from test_eval_cli import tiny_run  # noqa: F401 - the tiny GALIP toy run, as a fixture of this module

from ldm_vs_gan import eval as ev
from ldm_vs_gan.errors import MissingWeightsError
from ldm_vs_gan.metrics import provenance
from ldm_vs_gan.metrics.features import (
    DINOV2_FILE,
    IMAGENET_MEAN,
    IMAGENET_STD,
    build_extractor,
    extract,
    resolve_dinov2,
)
from ldm_vs_gan.paths import sha256_file

DIM = 16
HUBCONF = f'''
import torch
from torch import nn

dependencies = ["torch"]


class TinyViT(nn.Module):
    """Patch embedding, a CLS token, one attention block, a norm: (B, 3, 224, 224) -> (B, D) CLS."""

    def __init__(self, embed_dim={DIM}, patch_size=14):
        super().__init__()
        self.embed_dim = self.num_features = embed_dim
        self.patch_embed = nn.Conv2d(3, embed_dim, patch_size, stride=patch_size)
        self.cls_token = nn.Parameter(torch.randn(1, 1, embed_dim))
        self.block = nn.TransformerEncoderLayer(embed_dim, 2, 2 * embed_dim, dropout=0.0, batch_first=True)
        self.norm = nn.LayerNorm(embed_dim)

    def forward(self, x):
        assert x.shape[-2:] == (224, 224), x.shape
        t = self.patch_embed(x).flatten(2).transpose(1, 2)
        t = torch.cat([self.cls_token.expand(len(t), -1, -1), t], 1)
        return self.norm(self.block(t))[:, 0]


def dinov2_vitl14(*, pretrained=True, **kwargs):
    assert not pretrained, "the test repo has nothing to download"
    return TinyViT(**kwargs)
'''


def _weights(repo, path, seed: int):
    torch.manual_seed(seed)
    net = torch.hub.load(str(repo), "dinov2_vitl14", source="local", pretrained=False)
    torch.save(net.state_dict(), path)
    return path


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """(fake dinov2 clone, weights, other weights)"""
    root = tmp_path_factory.mktemp("dinov2")
    repo = root / "dinov2"
    repo.mkdir()
    (repo / "hubconf.py").write_text(HUBCONF)
    return repo, _weights(repo, root / DINOV2_FILE, 0), _weights(repo, root / "other.pth", 1)


def _smooth_images(n: int, size: int, seed: int = 0) -> torch.Tensor:
    """uint8 (n, 3, size, size) upsampled from 8x8 noise: image-like, not pixel noise."""
    g = torch.Generator().manual_seed(seed)
    base = torch.randint(0, 256, (n, 3, 8, 8), generator=g).float()
    up = torch.nn.functional.interpolate(base, size=(size, size), mode="bilinear", align_corners=False)
    return up.round().clamp(0, 255).to(torch.uint8)


def test_features_shape_determinism_and_provenance(files):
    repo, weights, other = files
    ext = build_extractor("dinov2", dinov2_repo=str(repo), dinov2_weights=str(weights))
    images = _smooth_images(5, 32)
    f = extract(ext, images, batch_size=2)
    assert f.shape == (5, DIM) and f.dtype == torch.float64 and torch.isfinite(f).all()
    assert ext.num_features == DIM  # from the model's embed_dim (1024 for ViT-L/14)
    assert torch.equal(f, extract(ext, images, batch_size=5))  # chunking changes nothing
    again = build_extractor("dinov2", dinov2_repo=str(repo), dinov2_weights=str(weights))
    assert torch.equal(f, extract(again, images)) and again.sha256 == ext.sha256
    prov = ext.provenance()
    assert prov["name"] == "dinov2-vitl14/cls" and prov["dim"] == DIM
    assert prov["weights_sha256"] == sha256_file(weights) and prov["weights_file"] == str(weights)
    assert "224" in prov["resize"] and "ImageNet" in prov["resize"] and prov["repo"] == str(repo)
    ext2 = build_extractor("dinov2", dinov2_repo=str(repo), dinov2_weights=str(other))
    assert ext2.sha256 != ext.sha256  # other weights: another feature space, another cache key
    assert not torch.allclose(extract(ext2, images), f)
    assert not ext.training and not any(p.requires_grad for p in ext.parameters())


def test_preprocessing_is_dgm_evals_transform(files):
    """torchvision Resize((224, 224), BICUBIC) on the PIL image + ToTensor, within one grey level,
    for downscaled, upscaled and already 224 px images; then ImageNet mean/std."""
    import torchvision.transforms as TF
    from PIL import Image

    repo, weights, _ = files
    ext = build_extractor("dinov2", dinov2_repo=str(repo), dinov2_weights=str(weights))
    tf = TF.Compose([TF.Resize((224, 224), TF.InterpolationMode.BICUBIC), TF.ToTensor()])
    mean, std = torch.tensor(IMAGENET_MEAN).view(3, 1, 1), torch.tensor(IMAGENET_STD).view(3, 1, 1)
    for size in (32, 224, 300):
        images = _smooth_images(2, size, seed=size)
        x = ext.preprocess(images)
        assert x.shape == (2, 3, 224, 224)
        for img, got in zip(images, x):
            ref = tf(Image.fromarray(img.permute(1, 2, 0).numpy()))
            levels = ((got * std + mean) - ref).abs() * 255
            assert levels.max() <= 1.0 + 1e-3 and levels.mean() < 0.3, size


def test_eval_cli_feature_dinov2_end_to_end(tiny_run, files, tmp_path, capsys):  # noqa: F811
    repo, weights, _ = files
    out = tmp_path / "dinov2.json"
    argv = ["--run", str(tiny_run), "--metric", "fid,prdc", "--feature", "dinov2"]
    argv += ["--dinov2-repo", str(repo), "--dinov2-weights", str(weights)]
    assert ev.main([*argv, "--num-samples", "24", "--batch-size", "8", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "fid: " in printed and "precision: " in printed
    res = json.loads(out.read_text())
    m, prov = res["metrics"], res["provenance"]
    assert provenance.missing(prov) == [] and np.isfinite(m["fid"]) and m["fid"] >= 0
    assert prov["extractor"]["name"] == "dinov2-vitl14/cls" and prov["extractor"]["dim"] == DIM
    assert prov["extractor"]["weights_sha256"] == sha256_file(weights)
    assert prov["data"]["source"] == "toy" and prov["num_samples"] == 24


def _one_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err
    return err


def test_eval_cli_missing_dinov2_is_one_line_before_generation(
    tiny_run,  # noqa: F811
    files,
    tmp_path,
    monkeypatch,
    capsys,
):
    repo, weights, _ = files
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))  # an empty hub cache
    base = ["--run", str(tiny_run), "--metric", "fid", "--feature", "dinov2"]
    t = time.perf_counter()
    assert ev.main([*base, "--dinov2-weights", str(weights)]) == 2
    err = _one_line(capsys)
    assert "DINOv2 code not found" in err and "--dinov2-repo" in err and "git clone" in err
    assert ev.main([*base, "--dinov2-repo", str(tmp_path / "nope"), "--dinov2-weights", str(weights)]) == 2
    assert f"--dinov2-repo='{tmp_path / 'nope'}'" in _one_line(capsys)
    assert ev.main([*base, "--dinov2-repo", str(repo)]) == 2
    err = _one_line(capsys)
    assert "DINOv2 weights not found" in err and f"--dinov2-weights /path/to/{DINOV2_FILE}" in err
    assert ev.main([*base, "--dinov2-repo", str(repo), "--dinov2-weights", str(tmp_path / "x.pth")]) == 2
    assert f"--dinov2-weights='{tmp_path / 'x.pth'}'" in _one_line(capsys)
    assert ev.main(["--run", str(tiny_run), "--dinov2-weights", str(weights)]) == 2
    assert "apply to --feature dinov2 only" in _one_line(capsys)
    assert time.perf_counter() - t < 10.0  # five refusals, no image generated


def test_damaged_or_mismatched_weights_are_one_clear_error(files, tmp_path):
    repo, _, _ = files
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(MissingWeightsError, match="is not a loadable state dict"):
        resolve_dinov2(repo, bad)
    torch.save({"blocks.0.weight": torch.zeros(2)}, bad)
    with pytest.raises(MissingWeightsError, match="not a DINOv2 ViT state dict"):
        resolve_dinov2(repo, bad)
    torch.save({"cls_token": torch.zeros(1, 1, DIM + 1)}, bad)  # another architecture's weights
    with pytest.raises(MissingWeightsError, match="does not fit dinov2_vitl14") as e:
        build_extractor("dinov2", dinov2_repo=str(repo), dinov2_weights=str(bad))
    assert "\n" not in str(e.value)
    (tmp_path / "wrong").mkdir()
    (tmp_path / "wrong" / "hubconf.py").write_text("dependencies = []\n")  # a clone of another repo
    with pytest.raises(MissingWeightsError, match="cannot build dinov2_vitl14"):
        build_extractor("dinov2", dinov2_repo=str(tmp_path / "wrong"), dinov2_weights=str(files[1]))
