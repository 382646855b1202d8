"""`python -m ldm_vs_gan.sample`: PNGs with full provenance in their text metadata plus a grid,
one image regenerable alone by its seed, and diffusion-only flags rejected for a GAN."""

import argparse

import pytest
import torch
from PIL import Image
from support import ldm as ldm_support
from test_engine_support import RES

from ldm_vs_gan.errors import UserError
from ldm_vs_gan.sample import main, sampling_options


@pytest.fixture(scope="module")
def tiny_ldm_run(tmp_path_factory):
    yield from ldm_support.tiny_ldm_run(
        tmp_path_factory.mktemp("sample") / "run", "trainer.max_images=16", "trainer.sample_every=0"
    )


def test_sample_writes_pngs_with_metadata_and_grid(tiny_ldm_run, tmp_path, capsys):
    out = tmp_path / "out"
    # experiment=ldm_tiny uses `source: random` CLIP/VAE, built from the global RNG at load time:
    # seed it so both loads below get the same frozen components (real runs load fixed weights)
    torch.manual_seed(0)
    rc = main(
        [
            "--run",
            str(tiny_ldm_run),
            "--prompt",
            "a red circle",
            "--seed",
            str(2**40),
            "--n",
            "3",
            "--sampler",
            "euler",
            "--steps",
            "3",
            "--guidance",
            "2.5",
            "--negative-prompt",
            "blue",
            "--out",
            str(out),
        ]
    )
    assert rc == 0
    pngs = sorted(out.glob("a-red-circle-seed*.png"))
    assert len(pngs) == 3 and (out / "grid.png").exists()
    meta = Image.open(pngs[0]).text
    assert meta["prompt"] == "a red circle" and meta["seed"] == str(2**40)
    assert meta["sampler"] == "euler" and meta["steps"] == "3" and meta["guidance"] == "2.5"
    assert meta["negative_prompt"] == "blue" and meta["checkpoint"].endswith(".pt")
    assert Image.open(pngs[0]).size == (RES, RES)
    # the second image regenerated alone by its seed
    torch.manual_seed(0)
    rc = main(
        [
            "--run",
            str(tiny_ldm_run),
            "--prompt",
            "a red circle",
            "--seed",
            str(2**40 + 1),
            "--n",
            "1",
            "--sampler",
            "euler",
            "--steps",
            "3",
            "--guidance",
            "2.5",
            "--negative-prompt",
            "blue",
            "--out",
            str(tmp_path / "one"),
        ]
    )
    again = torch.tensor(
        list(Image.open(tmp_path / "one" / f"a-red-circle-seed{2**40 + 1}.png").get_flattened_data())
    )
    first = torch.tensor(list(Image.open(pngs[1]).get_flattened_data()))
    assert (again - first).abs().max() <= 2


def test_bad_sampler_is_one_line(tiny_ldm_run, tmp_path, capsys):
    rc = main(["--run", str(tiny_ldm_run), "--prompt", "x", "--sampler", "heun", "--out", str(tmp_path)])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and err.startswith("error: sampler='heun' is not allowed") and "\n" not in err


def test_gan_rejects_diffusion_flags():
    args = argparse.Namespace(sampler=None, steps=20, guidance=None, negative_prompt=None)
    with pytest.raises(UserError, match="--steps is not a sampling option of the galip family"):
        sampling_options(args, {"truncation": None}, "galip")
    ok = argparse.Namespace(sampler=None, steps=None, guidance=None, negative_prompt=None)
    assert sampling_options(ok, {"truncation": None}, "galip") == {}


@pytest.mark.parametrize(
    "flags, says",
    [
        (["--device", "cuda"], "--device='cuda': no CUDA device"),
        (["--device", "tpu"], "--device='tpu' is not allowed"),
        (["--n", "-1"], "--n=-1 is not allowed"),
        (["--batch-size", "0"], "--batch-size=0 is not allowed"),
        (["--nrow", "0"], "--nrow=0 is not allowed"),
        (["--steps", "0"], "--steps=0 is not allowed"),
        (["--seed", str(2**63)], f"--seed={2**63} with --n=4 leaves the int64 range"),
    ],
)
def test_bad_flag_values_are_one_line(tiny_ldm_run, monkeypatch, capsys, flags, says):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # as on a machine without CUDA
    rc = main(["--run", str(tiny_ldm_run), "--prompt", "x", *flags])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and err.startswith(f"error: {says}") and "\n" not in err


def test_bad_run_out_and_syntax_are_one_line(tmp_path, capsys):
    assert main(["--run", str(tmp_path / "nope"), "--prompt", "x"]) == 2
    assert capsys.readouterr().err.startswith("error: --run=")
    (tmp_path / "file").write_text("")
    assert main(["--run", str(tmp_path), "--prompt", "x", "--out", str(tmp_path / "file" / "o")]) == 2
    assert capsys.readouterr().err.startswith("error: --out=")
    with pytest.raises(SystemExit) as e:
        main(["--run", str(tmp_path), "--prompt", "x", "--n", "abc"])
    err = capsys.readouterr().err.strip()
    assert e.value.code == 2 and err.startswith("error: argument --n: invalid int value") and "\n" not in err
