"""GALIP step mechanics: one fake batch per step shared by the D and G phases (official loop),
one Mate-D feature pass for the matching and mismatched captions, and the opt-in mode-seeking
term (MSGAN)."""

import pytest
import torch
from support.galip import batch, enter_phase, tiny_family

from ldm_vs_gan.errors import ConfigError
from ldm_vs_gan.galip.losses import mode_seeking


def run_step(fam, b, *, d_step=True, share=True):
    """One D phase then one G phase over one scratch dict, setting requires_grad as the engine
    does (``share``: the engine's ``share_across_phases``); returns the number of generator
    forwards, the logs of both phases and what the scratch holds after the step."""
    calls = []
    h = fam.generator.register_forward_hook(lambda *a: calls.append(1))
    logs = {}
    opts = {n: torch.optim.Adam(m.parameters(), lr=1e-2, betas=(0.0, 0.9)) for n, m in fam.networks().items()}
    scratch = {}
    for phase in ("discriminator", "generator"):
        ctx = enter_phase(fam, phase, scratch, share)
        for m in fam.networks().values():
            m.zero_grad(set_to_none=True)
        loss, lg = fam.loss(phase, b, ctx)
        loss.backward()
        logs[phase] = lg
        if phase == "discriminator":
            # the D phase's backward must not leave gradients in G (its features are detached)
            assert all(p.grad is None for p in fam.generator.parameters())
            if d_step:
                opts[phase].step()
    h.remove()
    return len(calls), logs, scratch


@pytest.mark.parametrize("share,engine_share,forwards", [(True, True, 1), (False, True, 2), (True, False, 2)])
def test_fake_made_once_per_step_when_shared(share, engine_share, forwards):
    """Shared only when the family asks (model.share_fake) and the engine allows it (not under
    DDP or accumulation)."""
    fam = tiny_family(share_fake=share)
    n, _, scratch = run_step(fam, batch(), share=engine_share)
    assert n == forwards
    g = fam.generator
    assert g.fc_prompt.weight.grad.abs().sum() > 0 and g.fc_code.weight.grad.abs().sum() > 0
    assert "fake" not in scratch  # the G phase took it: its graph is not held after the step


def test_shared_fake_gives_the_same_generator_gradient_as_a_fresh_forward_on_the_same_z():
    """Sharing is an implementation detail: the G gradient equals the one of a G phase that
    regenerates the same z after the D update (G is not updated in between)."""
    fam = tiny_family(share_fake=True)
    b = batch()
    torch.manual_seed(5)
    run_step(fam, b)
    shared = {k: p.grad.clone() for k, p in fam.generator.named_parameters()}
    # the unshared path, with its two noise draws (D phase, G phase) replaying the same z
    fam3 = tiny_family(share_fake=False)
    torch.manual_seed(5)
    z_seq = []
    real_noise = fam3._noise

    def noise(n, device):
        if len(z_seq) == 0:
            z_seq.append(real_noise(n, device))
        return z_seq[0]

    fam3._noise = noise
    run_step(fam3, b)
    for k, p in fam3.generator.named_parameters():
        torch.testing.assert_close(p.grad, shared[k], rtol=1e-4, atol=1e-6, msg=k)


def test_mate_d_extra_sentences_equal_separate_calls():
    fam = tiny_family()
    b = batch()
    taps = fam.clip.image_block_tokens(b.images, fam.taps)
    s = fam.sentence(b.captions)
    s2 = torch.roll(s, 1, 0)
    both = fam.discriminator(taps, s, s2)
    torch.testing.assert_close(both[0], fam.discriminator(taps, s))
    torch.testing.assert_close(both[1], fam.discriminator(taps, s2))


def test_mode_seeking_matches_msgan_formula_and_rewards_spread():
    torch.manual_seed(0)
    imgs, z = torch.rand(6, 3, 4, 4) * 0.5 - 0.25, torch.randn(6, 5)
    lz = (imgs[:3] - imgs[3:]).abs().mean() / (z[:3] - z[3:]).abs().mean()
    torch.testing.assert_close(mode_seeking(imgs, z), 1 / (lz + 1e-5))
    spread = imgs.clone()
    spread[3:] = imgs[:3] + 2 * (imgs[3:] - imgs[:3])  # pairs twice as far apart
    assert mode_seeking(spread, z) < mode_seeking(imgs, z)
    far = imgs.clone()
    far[3:] = torch.where(imgs[3:] > imgs[:3], 5.0, -5.0)  # beyond the image range: clamped
    torch.testing.assert_close(mode_seeking(far, z), mode_seeking(far.clamp(-1, 1), z))
    with pytest.raises(ValueError):
        mode_seeking(imgs[:1], z[:1])


def test_mode_seeking_option_pairs_captions_and_trains_g():
    fam = tiny_family(loss={"mode_seeking": 1.0})
    b = batch()
    sent = fam.sentence(b.captions)
    paired = fam._g_sentences(sent)
    torch.testing.assert_close(paired[:2], paired[2:])  # rows i and i + B/2 share a caption
    _, logs, _ = run_step(fam, b)
    assert "mode_seeking" in logs["generator"] and torch.isfinite(logs["generator"]["mode_seeking"])
    assert tiny_family().mode_seeking == 0.0  # off unless asked (official GALIP has no such term)
    with pytest.raises(ConfigError):
        tiny_family(loss={"mode_seeking": -1.0})
    with pytest.raises(ConfigError):
        tiny_family(share_fake="yes")


def test_translation_shifts_each_image_by_a_bounded_integer_offset_and_passes_gradients():
    from ldm_vs_gan.galip.augment import translate

    x = torch.full((64, 1, 16, 16), -0.6)
    x[:, 0, 8, 8] = 1.0  # one bright pixel in the middle
    assert translate(x, 0.0) is x
    torch.manual_seed(0)
    y = translate(x, 0.125)  # up to 2 px at 16 px
    assert y.shape == x.shape
    pos = [divmod(int(i), 16) for i in y.flatten(1).argmax(1)]
    offsets = {(r - 8, c - 8) for r, c in pos}
    assert all(abs(dr) <= 2 and abs(dc) <= 2 for dr, dc in offsets) and len(offsets) > 5
    assert torch.all(y.flatten(1).max(1).values == 1.0)  # the pixel is moved, not lost
    assert torch.all(y[y != 1.0] == -0.6)  # uncovered pixels copy the (uniform) border
    xg = x.clone().requires_grad_(True)
    translate(xg, 0.125)[:, 0, 8, 8].sum().backward()
    assert xg.grad.abs().sum() > 0


def test_translation_option_reaches_the_clip_inputs():
    fam = tiny_family(augment={"translation": 0.25})
    assert fam.translation == 0.25 and tiny_family().translation == 0.0  # off unless asked
    seen = []
    real = fam.clip.image_block_tokens
    fam.clip.image_block_tokens = lambda x, blocks: (seen.append(x), real(x, blocks))[1]
    b = batch()
    torch.manual_seed(0)
    _, logs, _ = run_step(fam, b)
    assert not torch.equal(seen[0], b.images)  # the real images were shifted before the ViT
    assert all(torch.isfinite(torch.as_tensor(v)) for lg in logs.values() for v in lg.values())
    with pytest.raises(ConfigError):
        tiny_family(augment={"translation": 0.6})
