"""On a CUDA device (``pytest -m cuda``; skipped where there is none): bf16 autocast steps of both
families through the engine, fp16 with GradScaler through GALIP's MA-GP (the penalty unscaled
correctly), the EMA and checkpoint round trip of a resumed run, and the samplers' outputs on the
device against the CPU within float tolerance. Tiny sizes on the engine's stand-in data.

``LDM_VS_GAN_CUDA_TESTS_DEVICE=cpu`` runs the same tests on the CPU (the GPU check's dry run
does, so their own logic is checked where no GPU is).
"""

from __future__ import annotations

import json
import os

import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import open_dict
from support import ldm as ldm_support
from support import standin_data
from support.engine import CONFIGS, RES
from support.galip import batch, enter_phase, tiny_family

from ldm_vs_gan.galip.losses import ma_gp

DEVICE = torch.device(os.environ.get("LDM_VS_GAN_CUDA_TESTS_DEVICE", "cuda"))
pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(DEVICE.type == "cuda" and not torch.cuda.is_available(), reason="no CUDA device"),
]


@pytest.fixture(autouse=True)
def _exact_fp32():
    """fp32 means fp32 here: cuDNN convolutions default to TF32 (10-bit mantissa) on Ampere+."""
    before = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    yield
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = before


def _ldm(run_dir, *overrides):
    return next(ldm_support.tiny_ldm_run(run_dir, f"trainer.device={DEVICE.type}", *overrides))


def _galip(run_dir, *overrides):
    from ldm_vs_gan.training import run

    with initialize_config_dir(str(CONFIGS), version_base="1.3"):
        cfg = compose(
            "train",
            overrides=[
                "model=galip",
                "experiment=galip_tiny",
                "logger=none",
                f"run_dir={run_dir}",
                f"data.resolution={RES}",
                "trainer.eval_every=0",
                f"trainer.device={DEVICE.type}",
                *overrides,
            ],
        )
    with open_dict(cfg):
        cfg.data.name = "standin"
    torch.set_num_threads(1)
    return run(cfg, data=standin_data)


def _rows(run_dir) -> list[dict]:
    return [json.loads(ln) for ln in (run_dir / "metrics.jsonl").read_text().splitlines()]


def _ckpt(run_dir) -> dict:
    return torch.load(run_dir / "checkpoints/last.pt", map_location="cpu", weights_only=True)


@pytest.mark.parametrize("family", ["ldm", "galip"])
def test_bf16_autocast_steps_of_both_families(tmp_path, family):
    train = _ldm if family == "ldm" else _galip
    rd = train(tmp_path / "run", "trainer.precision=bf16", "trainer.max_images=48")
    keys = (
        ["denoiser/loss"]
        if family == "ldm"
        else ["discriminator/loss", "discriminator/ma_gp", "generator/loss"]
    )
    steps = [r for r in _rows(rd) if keys[0] in r]
    assert [r["images_seen"] for r in steps] == [16, 32, 48]
    for r in steps:
        for k in keys:
            assert torch.isfinite(torch.tensor(float(r[k]))), (k, r[k])
    nets = _ckpt(rd)["networks"]
    # autocast computes in bf16; the weights (and so the checkpoint) stay fp32
    dtypes = {t.dtype for sd in nets.values() for t in sd.values() if t.is_floating_point()}
    assert dtypes == {torch.float32}
    assert all(torch.isfinite(t).all() for sd in nets.values() for t in sd.values() if t.is_floating_point())


def _gp_and_grads(fam, scale: float, dtype):
    """MA-GP of the tiny Mate-D on a real batch under ``dtype`` autocast, backpropagated as the
    loop does with a GradScaler of ``scale`` (loss * scale, then gradients / scale): (penalty,
    the discriminator's gradients as one vector)."""
    b = batch(4, 16)
    images = b.images.to(DEVICE)
    enter_phase(fam, "discriminator", {})
    fam.discriminator.zero_grad(set_to_none=True)
    with torch.autocast(DEVICE.type, dtype=dtype, enabled=dtype != torch.float32):
        sent = fam.sentence(b.captions)
        taps = [t.detach().requires_grad_(True) for t in fam.clip.image_block_tokens(images, fam.taps)]
        sent = sent.detach().clone().requires_grad_(True)
        logits = fam.discriminator([t.view_as(t) for t in taps], sent.view_as(sent))
        gp = ma_gp(logits, [*taps, sent], k=fam.gp_k, p=fam.gp_p, grad_scale=scale)
    (gp.float() * scale).backward()
    grads = torch.cat([p.grad.float().flatten() / scale for p in fam.discriminator.parameters()])
    return gp.detach().float(), grads


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


def test_fp16_grad_scaler_unscales_the_ma_gp(tmp_path):
    fam = tiny_family(16).to(DEVICE)
    with torch.no_grad():  # a Mate-D with live gates (fresh ones are zero: a gradient of exactly 0)
        for p in fam.discriminator.parameters():
            p.add_(0.05 * torch.randn_like(p))
    gp32, g32 = _gp_and_grads(fam, 1.0, torch.float32)
    gp1, g1 = _gp_and_grads(fam, 1.0, torch.float16)
    # the GradScaler's initial scale: d sum(logits) / d logit = 2**16 would overflow fp16 logits
    gp16, g16 = _gp_and_grads(fam, 2.0**16, torch.float16)
    assert gp32 > 0 and torch.isfinite(gp16) and torch.isfinite(g16).all()
    # scaled inside autograd.grad and unscaled after: the scale changes nothing but underflow
    assert float(gp16) == pytest.approx(float(gp1), rel=1e-3) and _rel(g16, g1) < 1e-3
    # and fp16 computes the fp32 penalty and gradient up to its rounding (amplified by the 6th power)
    assert float(gp16) == pytest.approx(float(gp32), rel=0.1) and _rel(g16, g32) < 0.2
    # through the loop: fp16 + one GradScaler per phase gives the first step's penalty of fp32
    first = {}
    for prec in ("fp32", "fp16"):
        rd = _galip(tmp_path / prec, f"trainer.precision={prec}", "trainer.max_images=32")
        first[prec] = _rows(rd)[0]
    assert first["fp16"]["grad_scale/discriminator"] > 1
    assert first["fp16"]["discriminator/ma_gp"] == pytest.approx(
        first["fp32"]["discriminator/ma_gp"], rel=0.1
    )


def test_ema_and_checkpoint_round_trip_on_the_device(tmp_path):
    # fp32: CUDA kernels are not bitwise deterministic, and bf16 would magnify their differences
    fp32 = "trainer.precision=fp32"
    straight = _ldm(tmp_path / "straight", fp32, "trainer.max_images=128")
    _ldm(tmp_path / "resumed", fp32, "trainer.max_images=64")
    resumed = _ldm(tmp_path / "resumed", fp32, "trainer.max_images=128")  # from the 64-image checkpoint
    a, b = _ckpt(straight), _ckpt(resumed)
    assert a["images_seen"] == b["images_seen"] == 128 and a["ema"]["updates"] == b["ema"]["updates"] == 8
    for part in ("networks", "ema"):
        flat_a = {k: v for k, v in a[part].items() if k != "updates"}
        flat_b = {k: v for k, v in b[part].items() if k != "updates"}
        for name, sd in flat_a.items():
            for k, v in sd.items():
                # a lost optimizer state, EMA or RNG stream would differ by the lr (3e-3) or more
                torch.testing.assert_close(flat_b[name][k], v, rtol=1e-3, atol=2e-4)
    # the exported sampling weights are the checkpoint's EMA, loaded back onto the device
    from ldm_vs_gan.training import load_run

    fam, _, info = load_run(resumed, device=DEVICE)
    assert info["weights"] == "ema" and next(fam.unet.parameters()).device.type == DEVICE.type
    for k, p in fam.unet.named_parameters():
        # a copy, not a computation: the loaded weights are the stored EMA tensors, bit for bit
        torch.testing.assert_close(p.detach().cpu(), b["ema"]["params"][k], rtol=0, atol=0)


def test_samplers_on_the_device_match_the_cpu(tmp_path):
    from ldm_vs_gan.ldm.samplers import SAMPLERS
    from ldm_vs_gan.training import load_run

    rd = _ldm(tmp_path / "run", "trainer.max_images=32", "trainer.sample_every=0")
    cpu, _, _ = load_run(rd)
    dev, _, _ = load_run(rd, device=DEVICE)
    caps, seeds = ["a red circle", "a blue square", "a green cross"], [0, 1, 2**40]
    for sampler in SAMPLERS:
        kw = {"sampler": sampler, "steps": 4, "guidance": 2.0}
        a, b = cpu.generate(caps, seeds, **kw), dev.generate(caps, seeds, **kw).cpu()
        diff = (a.int() - b.int()).abs()
        assert diff.max() <= 2 and diff.float().mean() < 0.05, (sampler, diff.max(), diff.float().mean())
    g = tiny_family(16)
    a = g.generate(caps, seeds)
    b = g.to(DEVICE).generate(caps, seeds).cpu()
    assert (a.int() - b.int()).abs().max() <= 1
