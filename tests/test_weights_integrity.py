"""Sampling weights are checked before use: a damaged or unreadable weights file stops `sample` and
`eval` with one line naming it (exit status 2), and the recorded hash is that of the bytes loaded."""

import datetime
import hashlib
import io
import json
import shutil
import subprocess
import sys

import pytest
import torch

from ldm_vs_gan import eval as ev
from ldm_vs_gan import sample
from ldm_vs_gan.errors import UserError

WORLD = ["data.n_train=64", "data.n_heldout=48", "data.shard_size=64"]


def _cli(module: str, *args) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", f"ldm_vs_gan.{module}", *map(str, args)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300)


def _sampling_file(run):
    """The sampling network's weights file, named by the run's manifest."""
    m = json.loads((run / "weights/manifest.json").read_text())
    return run / "weights" / m["networks"][m["ema_network"]]["file"]


def _copy(run, tmp_path):
    shutil.copytree(run, tmp_path / "run")
    return tmp_path / "run"


def _one_line_naming(err: str, path) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and str(path) in lines[0], err[-2000:]
    return lines[0]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny LDM run trained by the real CLI (seconds)."""
    rd = tmp_path_factory.mktemp("integrity") / "run"
    p = _cli(
        "train",
        "model=ldm",
        "experiment=ldm_tiny",
        "logger=none",
        f"run_dir={rd}",
        "trainer.max_images=16",
        "trainer.sample_every=0",
        "trainer.eval_every=0",
        *WORLD,
    )
    assert p.returncode == 0, p.stderr[-3000:]
    return rd


@pytest.fixture(scope="module")
def damaged(trained, tmp_path_factory):
    """A copy of the run with 4,000 bytes inside the tensor data flipped (the header still parses)."""
    rd = tmp_path_factory.mktemp("damaged") / "run"
    shutil.copytree(trained, rd)
    f = _sampling_file(rd)
    data = bytearray(f.read_bytes())
    mid = len(data) // 2
    data[mid : mid + 4000] = bytes(b ^ 0xFF for b in data[mid : mid + 4000])
    f.write_bytes(bytes(data))
    return rd, f


def test_sample_cli_refuses_damaged_weights(damaged, tmp_path):
    rd, f = damaged
    p = _cli("sample", "--run", rd, "--prompt", "a red circle", "--n", "1", "--out", tmp_path)
    assert p.returncode == 2
    assert "sha256" in _one_line_naming(p.stderr, f)
    assert not list(tmp_path.glob("*.png"))


def test_eval_cli_refuses_damaged_weights(damaged, tmp_path):
    rd, f = damaged
    out = tmp_path / "e.json"
    p = _cli("eval", "--run", rd, "--metric", "clip_score", "--num-samples", "4", "--out", out)
    assert p.returncode == 2
    assert "sha256" in _one_line_naming(p.stderr, f)
    assert not out.exists()


def test_intact_run_records_the_hash_of_the_bytes_loaded(trained, tmp_path, capsys):
    want = {"unet": hashlib.sha256(_sampling_file(trained).read_bytes()).hexdigest()}
    out = tmp_path / "e.json"
    torch.manual_seed(0)  # experiment=ldm_tiny builds a random CLIP/VAE from the global RNG
    argv = ["--run", str(trained), "--metric", "clip_score", "--feature", "clip", "--num-samples", "4"]
    argv += ["--out", str(out)]
    assert ev.main(argv) == 0
    assert json.loads(out.read_text())["provenance"]["checkpoint"]["weights_sha256"] == want
    from PIL import Image

    argv = ["--run", str(trained), "--prompt", "a red circle", "--n", "1", "--out", str(tmp_path / "s")]
    assert sample.main(argv) == 0
    png = next((tmp_path / "s").glob("*seed0.png"))
    assert json.loads(Image.open(png).text["weights_sha256"]) == want


@pytest.mark.parametrize("keep", [0, 7, 1000])
def test_truncated_safetensors_is_one_line_naming_the_file(trained, tmp_path, keep, capsys):
    rd = _copy(trained, tmp_path)
    f = _sampling_file(rd)
    cut = f.read_bytes()[:keep]
    f.write_bytes(cut)
    manifest = json.loads((rd / "weights/manifest.json").read_text())
    manifest["networks"]["unet"]["sha256"] = hashlib.sha256(cut).hexdigest()  # only the parse can fail
    (rd / "weights/manifest.json").write_text(json.dumps(manifest))
    assert sample.main(["--run", str(rd), "--prompt", "x", "--n", "1", "--out", str(tmp_path / "o")]) == 2
    assert "not a readable safetensors file" in _one_line_naming(capsys.readouterr().err, f)


def test_unreadable_manifest_and_checkpoint_are_one_line(trained, tmp_path, capsys):
    from ldm_vs_gan.training import load_run

    rd = _copy(trained, tmp_path)
    (rd / "weights/manifest.json").write_text("{not json")
    with pytest.raises(UserError, match="manifest.json is not a readable weights manifest"):
        load_run(rd)
    pickled = io.BytesIO()
    torch.save({"images_seen": 16, "networks": {}, "when": datetime.date(2020, 1, 1)}, pickled)
    for damage in (b"", b"\x80\x02garbage", (rd / "config.yaml").read_bytes(), pickled.getvalue()):
        (rd / "checkpoints/last.pt").write_bytes(damage)
        with pytest.raises(UserError) as e:
            load_run(rd, weights="raw")
        assert str(rd / "checkpoints/last.pt") in str(e.value) and "\n" not in str(e.value)


def test_load_run_rebuilds_the_frozen_parts_the_run_trained_with(trained):
    """Frozen parts with random weights (the tiny CLIP and VAE) come from the run's seed, as in
    training: two loads give the same family, and the caller's RNG streams do not move."""
    import torch

    from ldm_vs_gan.training import load_run

    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    a, _, _ = load_run(trained)
    b, _, _ = load_run(trained)
    assert torch.equal(torch.rand(3), expected)
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)
    assert any("clip" in k for k in sa)  # the frozen CLIP is part of what was compared
