"""Our UNet: same parameter layout as diffusers' UNet2DConditionModel; sizes; masks; checkpointing."""

import pytest
import torch

from ldm_vs_gan.errors import ConfigError
from ldm_vs_gan.ldm.twin import diffusers_twin
from ldm_vs_gan.ldm.unet import UNet, unet_config


def _count(m):
    return sum(p.numel() for p in m.parameters())


@pytest.mark.parametrize("size", ["tiny", "toy"])
def test_parameter_count_equals_diffusers(size):
    cfg = unet_config(size)
    assert _count(UNet(cfg)) == _count(diffusers_twin(cfg, sample_size=8))


def test_sd_size_is_860M_on_meta_device():
    with torch.device("meta"):
        n = _count(UNet(unet_config("sd")))
    assert 855e6 < n < 865e6, n  # SD v1 UNet: 859.5M


def test_forward_shapes_mask_and_gradient_checkpointing():
    torch.manual_seed(0)
    cfg = unet_config("tiny", context_dim=16)
    net = UNet(cfg)
    x, t = torch.randn(2, 4, 8, 8), torch.tensor([3, 900])
    ctx = torch.randn(2, 5, 16)
    mask = torch.tensor([[1, 1, 0, 0, 0], [1, 1, 1, 1, 1]], dtype=torch.bool)
    y = net(x, t, ctx, mask)
    assert y.shape == x.shape and torch.isfinite(y).all()
    # masked-out tokens do not matter
    ctx2 = ctx.clone()
    ctx2[0, 2:] = 100.0
    torch.testing.assert_close(net(x, t, ctx2, mask)[0], y[0])
    # text matters where it is not masked
    assert not torch.allclose(net(x, t, ctx2, None)[0], y[0])
    # an all-false mask row does not give NaN
    assert torch.isfinite(net(x, t, ctx, torch.zeros(2, 5, dtype=torch.bool))).all()
    # checkpointing changes memory, not results or gradients
    net2 = UNet(unet_config("tiny", context_dim=16, gradient_checkpointing=True))
    net2.load_state_dict(net.state_dict())
    net.train()
    net2.train()
    net(x, t, ctx, mask).square().mean().backward()
    net2(x, t, ctx, mask).square().mean().backward()
    for (n1, p1), (_, p2) in zip(net.named_parameters(), net2.named_parameters()):
        torch.testing.assert_close(p1.grad, p2.grad, rtol=1e-4, atol=1e-6, msg=n1)


def test_pooled_text_embedding_conditions_the_unet():
    torch.manual_seed(0)
    base = UNet(unet_config("tiny", context_dim=16))
    net = UNet(unet_config("tiny", context_dim=16, pooled_dim=8))
    temb = 4 * net.cfg.base_channels
    # the only extra parameters: the pooled MLP (8 -> temb -> temb)
    assert _count(net) - _count(base) == (8 * temb + temb) + (temb * temb + temb)
    x, t, ctx = torch.randn(2, 4, 8, 8), torch.tensor([3, 900]), torch.randn(2, 5, 16)
    pooled = torch.randn(2, 8)
    y = net(x, t, ctx, None, pooled)
    assert y.shape == x.shape
    other = pooled.clone()
    other[1] += 1.0
    y2 = net(x, t, ctx, None, other)
    torch.testing.assert_close(y2[0], y[0])  # per sample
    assert not torch.allclose(y2[1], y[1])  # the pooled embedding reaches the output
    with pytest.raises(ValueError, match="pooled"):
        net(x, t, ctx, None)


def test_bad_size_and_key():
    with pytest.raises(ConfigError, match="model.unet.size='huge'"):
        unet_config("huge")
    with pytest.raises(ConfigError, match="model.unet.chanels"):
        unet_config("tiny", chanels=3)
    with pytest.raises(ConfigError, match="attention_levels"):
        unet_config("tiny", attention_levels=[5])
