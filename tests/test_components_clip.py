"""FrozenCLIP on the tiny random config: text features, ViT block access, preprocessing, freezing."""

import pytest
import torch
from omegaconf import OmegaConf
from test_components_support import CONFIGS

from ldm_vs_gan.components import FrozenCLIP, build_clip


@pytest.fixture(scope="module")
def clip() -> FrozenCLIP:
    torch.manual_seed(0)
    torch.set_num_threads(1)
    return build_clip(OmegaConf.load(CONFIGS / "clip/tiny.yaml"), data_cfg={"resolution": 32})


def test_sizes(clip):
    assert (clip.token_dim, clip.embed_dim, clip.vit_width, clip.vit_layers) == (32, 32, 32, 4)
    assert clip.vit_grid == (4, 4) and clip.image_size == 32 and clip.context_length == 16


def test_text_features_shapes_mask_and_pooled(clip):
    caps = ["a small red circle", "a large blue square to the left of a small green cross", ""]
    f = clip.encode_text(caps)
    assert f.tokens.shape == (3, 16, 32) and f.pooled.shape == (3, 32) and f.mask.shape == (3, 16)
    assert f.mask.dtype == torch.bool
    ids = clip.tokenize(caps)
    eot = ids.argmax(-1)
    # mask: SOT..EOT inclusive, a prefix of the sequence; the empty caption has SOT+EOT only
    assert f.mask.sum(1).tolist() == (eot + 1).tolist()
    assert f.mask.sum(1)[2].item() == 2
    assert all(bool(m[: int(n)].all()) for m, n in zip(f.mask, f.mask.sum(1)))
    # pooled == open_clip's own encode_text (EOT token after ln_final @ text_projection), unnormalised
    torch.testing.assert_close(f.pooled, clip.model.encode_text(ids), rtol=0, atol=1e-6)
    # token features are after ln_final: unit-variance-ish per token, not the raw residual stream
    assert torch.allclose(
        f.tokens.mean(-1), torch.zeros(3, 16), atol=1e-3 + clip.model.ln_final.bias.abs().max()
    )


def test_block_tokens_match_open_clip_reference(clip):
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    mine = clip.image_block_tokens(x, [1, 3, 4])
    # independent reference: open_clip's forward_intermediates (0-based indices, NCHW, no CLS)
    ref = clip.visual.forward_intermediates(clip.preprocess(x), indices=[0, 2, 3], intermediates_only=True)
    for a, b in zip(mine, ref["image_intermediates"]):
        assert a.shape == (2, 32, 4, 4)
        torch.testing.assert_close(a, b, rtol=0, atol=1e-5)
    # and the last block against the plain forward of the tower's transformer
    v = clip.visual
    last = v.transformer(v._embeds(clip.preprocess(x)))[:, 1:]  # (B, N, C)
    torch.testing.assert_close(mine[2], last.transpose(1, 2).reshape(2, 32, 4, 4), rtol=0, atol=1e-5)
    # order follows the request
    again = clip.image_block_tokens(x, [4, 1])
    torch.testing.assert_close(again[0], mine[2])
    torch.testing.assert_close(again[1], mine[0])


def test_taps_and_embedding_in_one_pass_equal_the_two_calls(clip):
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    taps, emb = clip.image_taps_and_embedding(x, [2, 1])
    for a, b in zip(taps, clip.image_block_tokens(x, [2, 1])):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    torch.testing.assert_close(emb, clip.encode_image(x), rtol=0, atol=1e-5)


def test_prompted_forward_without_prompts_equals_plain_forward(clip):
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    tokens = clip.visual.conv1(clip.preprocess(x))  # (B, C, gh, gw): what conv1 would feed
    out = clip.vit_prompted_forward(tokens, {})
    torch.testing.assert_close(out, clip.image_block_tokens(x, [clip.vit_layers])[0], rtol=0, atol=1e-5)


def test_prompts_act_only_from_their_block_and_gradients_reach_inputs(clip):
    torch.manual_seed(1)
    tokens = torch.randn(2, 32, 4, 4, requires_grad=True)
    p2 = torch.randn(2, 32, requires_grad=True)
    p3 = torch.randn(2, 32, requires_grad=True)
    out = clip.vit_prompted_forward(tokens, {2: p2, 3: p3})
    assert out.shape == (2, 32, 4, 4)
    assert not torch.allclose(out, clip.vit_prompted_forward(tokens, {}))
    out.square().mean().backward()
    for t in (tokens, p2, p3):
        assert t.grad is not None and t.grad.abs().sum() > 0
    assert all(p.grad is None for p in clip.parameters())
    # reference for one prompt before block 2: run block 1, append, block 2, drop, blocks 3-4
    v = clip.visual
    with torch.no_grad():
        h = clip._embed_patches(tokens.flatten(2).transpose(1, 2))
        h = v.transformer.resblocks[0](h)
        h = v.transformer.resblocks[1](torch.cat([h, p2[:, None]], 1))[:, :-1]
        for blk in v.transformer.resblocks[2:]:
            h = blk(h)
        torch.testing.assert_close(
            clip.vit_prompted_forward(tokens, {2: p2}),
            h[:, 1:].transpose(1, 2).reshape(2, 32, 4, 4),
            rtol=0,
            atol=1e-5,
        )


def test_bad_block_index_is_a_clear_error(clip):
    with pytest.raises(ValueError, match="1-based"):
        clip.image_block_tokens(torch.zeros(1, 3, 32, 32), [0])
    with pytest.raises(ValueError, match="1-based"):
        clip.vit_prompted_forward(torch.zeros(1, 32, 4, 4), {5: torch.zeros(1, 32)})


def test_preprocess_maps_once_resizes_and_normalises(clip):
    mean = torch.tensor([0.48145466, 0.4578275, 0.40821073]).view(1, 3, 1, 1)
    std = torch.tensor([0.26862954, 0.26130258, 0.27577711]).view(1, 3, 1, 1)
    x = torch.full((1, 3, 32, 32), -1.0)  # black -> 0 (not 0.5: GALIP's double mapping bug)
    torch.testing.assert_close(clip.preprocess(x), ((0 - mean) / std).expand(1, 3, 32, 32))
    big = torch.rand(2, 3, 64, 64) * 2 - 1
    p = clip.preprocess(big)
    assert p.shape == (2, 3, 32, 32)  # antialiased resize to the tower's size
    ref = torch.nn.functional.interpolate((big + 1) / 2, size=(32, 32), mode="bicubic", antialias=True)
    torch.testing.assert_close(p, (ref - mean) / std)
    torch.testing.assert_close(clip.encode_image(big), clip.model.encode_image(p))


def test_frozen_and_kept_in_eval(clip):
    parent = torch.nn.Sequential(clip, torch.nn.Linear(2, 2))
    parent.train()
    assert not clip.training and not any(m.training for m in clip.modules())
    assert not any(p.requires_grad for p in clip.parameters())
    assert parent[1].training


def test_conv_stem_replaces_patchify_and_keeps_the_vit_contract():
    from ldm_vs_gan.components.clip import ConvStem
    from ldm_vs_gan.errors import ConfigError

    cfg = OmegaConf.load(CONFIGS / "clip/tiny.yaml")
    cfg.arch.vision_cfg.conv_stem = [8, 16, 16]  # patch 8 at 32 px (grid 4): three stride-2 convs
    torch.manual_seed(0)
    stem = build_clip(cfg, data_cfg={"resolution": 32})
    assert isinstance(stem.visual.conv1, ConvStem)
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    # open_clip's own forward runs through the stem, and so do our block taps (same reference)
    ref = stem.visual.forward_intermediates(stem.preprocess(x), indices=[1], intermediates_only=True)
    torch.testing.assert_close(stem.image_block_tokens(x, [2])[0], ref["image_intermediates"][0])
    assert stem.encode_image(x).shape == (2, 32)
    # a shorter list repeats its last width (the toy default [32, 64] also serves patch 8 at 64 px)
    cfg.arch.vision_cfg.conv_stem = [8, 16]
    short = build_clip(cfg, data_cfg={"resolution": 32})
    assert [m.out_channels for m in short.visual.conv1 if isinstance(m, torch.nn.Conv2d)] == [8, 16, 16, 32]
    cfg.arch.vision_cfg.conv_stem = [8, 16, 16, 16]  # four stride-2 convs overshoot patch 8
    with pytest.raises(ConfigError, match="conv_stem"):
        build_clip(cfg, data_cfg={"resolution": 32})


def test_token_layer_picks_a_layer_through_ln_final(clip):
    caps = ["a small red circle", "a large blue square"]
    m = clip.model
    ids = clip.tokenize(caps)
    L = ids.shape[1]
    default = clip.encode_text(caps)
    # -1 and n are the default (the last block); pooled never changes with token_layer
    for k in (-1, clip.text_layers):
        f = clip.encode_text(caps, token_layer=k)
        torch.testing.assert_close(f.tokens, default.tokens, rtol=0, atol=0)
    # independent reference: the stack truncated by hand (open_clip's own modules), then ln_final
    x = m.token_embedding(ids) + m.positional_embedding[:L]
    torch.testing.assert_close(clip.encode_text(caps, token_layer=0).tokens, m.ln_final(x), rtol=0, atol=1e-6)
    for blk in m.transformer.resblocks[:-1]:
        x = blk(x, attn_mask=m.attn_mask[:L, :L])
    pen = clip.encode_text(caps, token_layer=-2)
    torch.testing.assert_close(pen.tokens, m.ln_final(x), rtol=0, atol=1e-5)
    torch.testing.assert_close(pen.pooled, default.pooled, rtol=0, atol=0)
    torch.testing.assert_close(pen.mask, default.mask)
    assert not torch.allclose(pen.tokens, default.tokens)
    for bad in (clip.text_layers + 1, -(clip.text_layers + 2), 1.0, True):
        with pytest.raises(ValueError, match="token_layer"):
            clip.encode_text(caps, token_layer=bad)
