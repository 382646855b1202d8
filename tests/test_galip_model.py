"""Mate-G / Mate-D: official parameter counts, the frozen ViT stays frozen while gradients pass
through it, architecture rules for other ViTs, and deterministic generation."""

import copy

import pytest
import torch
from omegaconf import OmegaConf
from support.galip import batch, enter_phase, tiny_family

from ldm_vs_gan.components import FrozenCLIP
from ldm_vs_gan.errors import ConfigError
from ldm_vs_gan.galip import arch
from ldm_vs_gan.galip.family import GALIPFamily
from ldm_vs_gan.training.family import StepContext

OFFICIAL = {  # REFERENCE.md s2: the official widths at ViT-B/32, 224 px
    "z_dim": 100,
    "generator": {
        "bridge_channels": 64,
        "bridge_mid_channels": 32,
        "bridge_blocks": 4,
        "ngf": 64,
        "max_mult": 8,
    },
    "discriminator": {"out_channels": 512, "assessor_channels": 128},
}


def test_official_parameter_counts_vit_b32():
    """G 51.83M and D 29.63M trainable at ViT-B/32, 224 px (official D without its 1.18M dead
    shortcut convs). Built on the meta device: counts need no memory or init time."""
    import open_clip

    from ldm_vs_gan.components.clip import bpe_tokenizer, build_open_clip

    arch_cfg = open_clip.get_model_config("ViT-B-32")  # open_clip's own ViT-B-32 definition
    with torch.device("meta"):
        clip = FrozenCLIP(build_open_clip(arch_cfg), bpe_tokenizer(77))
    assert (clip.vit_width, clip.vit_layers, clip.vit_grid, clip.image_size) == (768, 12, (7, 7), 224)
    with torch.device("meta"):
        fam = GALIPFamily(clip, OmegaConf.create(OFFICIAL), 224)
    n_g = sum(p.numel() for p in fam.generator.parameters() if p.requires_grad)
    n_d = sum(p.numel() for p in fam.discriminator.parameters() if p.requires_grad)
    assert abs(n_g / 51.83e6 - 1) < 0.005, n_g
    assert abs(n_d / 29.63e6 - 1) < 0.005, n_d
    parts = fam.generator.parameter_groups()  # REFERENCE.md: 2.72M, 3.77M, 9.83M, 35.51M
    assert [
        round(parts[k] / 1e6, 2)
        for k in ("bridge_predictor", "prompt_predictor", "fusion", "generator_blocks")
    ] == [2.72, 3.77, 9.83, 35.51]
    assert [round(v / 1e6, 2) for v in fam.discriminator.parameter_groups().values()] == [27.53, 2.10]
    # the frozen CLIP is shared, never part of either network
    assert not any(p.requires_grad for p in clip.parameters())
    assert set(fam.networks()) == {"generator", "discriminator"}
    assert fam.taps == [2, 5, 9] and fam.generator.prompt_blocks == list(range(2, 10))
    assert [b.size[0] for b in fam.generator.gen_blocks] == [8, 16, 32, 64, 128, 224]
    assert [b.conv2.out_channels for b in fam.generator.gen_blocks] == [512, 512, 512, 256, 128, 64]


def test_arch_rules_scale_with_the_vit():
    assert arch.map_blocks(arch.OFFICIAL_TAPS, 12) == [2, 5, 9]
    assert arch.map_blocks(arch.OFFICIAL_TAPS, 8) == [1, 3, 6]
    assert arch.map_blocks(arch.OFFICIAL_TAPS, 4) == [1, 2, 3]
    assert arch.map_blocks(arch.OFFICIAL_PROMPT_BLOCKS, 24) == [4, 6, 8, 10, 12, 14, 16, 18]
    assert arch.generator_sizes(7, 224) == [8, 16, 32, 64, 128, 224]
    assert arch.generator_sizes(7, 128) == [8, 16, 32, 64, 128]
    assert arch.generator_sizes(8, 32) == [8, 16, 32]
    assert arch.generator_sizes(4, 16) == [4, 8, 16]
    assert arch.generator_channels(6, 64, 8) == [512, 512, 512, 256, 128, 64]
    assert arch.assessor_kernels(7) == (4, 4) and arch.assessor_kernels(4) == (3, 2)
    with pytest.raises(ConfigError, match="model.discriminator.taps"):
        tiny_family(discriminator={"taps": [3, 9]})


def test_shapes_on_a_small_vit():
    fam = tiny_family()
    b = batch()
    x = fam.generator(torch.randn(4, fam.z_dim), fam.sentence(b.captions))
    assert x.shape == (4, 3, 16, 16)
    taps = fam.clip.image_block_tokens(x, fam.taps)
    assert fam.discriminator(taps, fam.sentence(b.captions)).shape == (4,)


def test_frozen_vit_unchanged_by_d_and_g_steps_while_gradients_pass_through_it():
    fam = tiny_family()
    clip_before = copy.deepcopy(fam.clip.state_dict())
    opt = {n: torch.optim.Adam(m.parameters(), lr=1e-2, betas=(0.0, 0.9)) for n, m in fam.networks().items()}
    b = batch()
    scratch = {}  # one step: the G phase trains through the D phase's fake
    for phase, net in (("discriminator", "discriminator"), ("generator", "generator")):
        ctx = enter_phase(fam, phase, scratch)  # as the engine does
        opt[net].zero_grad()
        loss, logs = fam.loss(phase, b, ctx)
        loss.backward()
        assert torch.isfinite(loss) and all(torch.isfinite(torch.as_tensor(v)) for v in logs.values())
        if phase == "generator":
            g = fam.generator
            # The prompt predictor reaches the image *only* through the frozen ViT.
            assert g.fc_prompt.weight.grad is not None and g.fc_prompt.weight.grad.abs().sum() > 0
            assert g.fc_code.weight.grad.abs().sum() > 0
        opt[net].step()
    for k, v in fam.clip.state_dict().items():
        assert torch.equal(v, clip_before[k]), k  # bit-identical
    assert all(p.grad is None for p in fam.clip.parameters())


def test_bridge_gradient_includes_the_vit_path(monkeypatch):
    """The bridge predictor's gradient differs when the ViT path is cut: gradient flows through
    the frozen ViT into the bridge (not only through the 'bridge +' skip)."""
    fam = tiny_family()
    sent = fam.sentence(batch().captions)
    z = torch.randn(4, fam.z_dim)

    def bridge_grad():
        fam.generator.zero_grad()
        fam.generator(z, sent).square().mean().backward()
        return fam.generator.to_bridge.weight.grad.clone()

    full = bridge_grad()
    real_forward = fam.clip.vit_prompted_forward
    monkeypatch.setattr(fam.clip, "vit_prompted_forward", lambda t, p: real_forward(t.detach(), p))
    cut = bridge_grad()
    assert (full - cut).abs().max() > 1e-6 * full.abs().max()


def test_generate_is_deterministic_per_seed_and_rejects_diffusion_flags():
    fam = tiny_family()
    caps = ["a small red circle", "a large blue square", "a small red circle"]
    seeds = [0, 2**40 + 7, 5]
    imgs = fam.generate(caps, seeds)
    assert imgs.dtype == torch.uint8 and imgs.shape == (3, 3, 16, 16)
    alone = fam.generate(caps[1:2], seeds[1:2])
    # any image regenerates alone (another batch size: float rounding may move a pixel level)
    assert (alone[0].int() - imgs[1].int()).abs().max() <= 2
    assert not torch.equal(imgs[0], imgs[2])  # same caption, different seed
    assert fam.sampling_defaults() == {"truncation": None}
    z = fam.noise_for([3, 4], truncation=0.5)
    assert z.abs().max() <= 0.5
    with pytest.raises(ConfigError, match="steps"):
        fam.generate(caps, seeds, steps=50)
    with pytest.raises(ConfigError, match="truncation"):
        fam.generate(caps, seeds, truncation=-1.0)


def test_ema_flag():
    assert tiny_family().ema_network is None  # official: no EMA
    assert tiny_family(ema=True).ema_network == "generator"


def test_one_vit_pass_equals_the_two_contract_calls():
    from ldm_vs_gan.galip.vit import taps_and_embedding

    fam = tiny_family()
    x = batch().images
    taps, emb = taps_and_embedding(fam.clip, x, fam.taps)
    for a, b in zip(taps, fam.clip.image_block_tokens(x, fam.taps)):
        torch.testing.assert_close(a, b)
    torch.testing.assert_close(emb, fam.clip.encode_image(x))


def test_losses_under_bf16_autocast_and_a_grad_scale():
    """The engine's bf16 autocast, and the fp16 path's GradScaler scale passed as ctx.grad_scale:
    both phases stay finite and the penalty does not grow with the scale."""
    fam = tiny_family()
    b = batch()
    nets = fam.networks()
    torch.manual_seed(3)
    scratch = {}
    with torch.autocast("cpu", dtype=torch.bfloat16):
        for phase in ("discriminator", "generator"):
            loss, _ = fam.loss(phase, b, enter_phase(fam, phase, scratch))
            loss.backward()
            assert torch.isfinite(loss)
    torch.manual_seed(4)
    _, plain = fam.loss("discriminator", b, StepContext(nets=nets, grad_scale=1.0))
    torch.manual_seed(4)
    _, scaled = fam.loss("discriminator", b, StepContext(nets=nets, grad_scale=2.0**16))
    torch.testing.assert_close(scaled["ma_gp"], plain["ma_gp"], rtol=1e-4, atol=1e-12)
