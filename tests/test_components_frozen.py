"""Frozen components stay bit-identical through a training step of a family that uses them, while
gradients flow through them to the trainable inputs (docs/CONTRACTS.md, "Frozen means")."""

import torch
from omegaconf import OmegaConf
from test_components_support import CONFIGS

from ldm_vs_gan.components import build_autoencoder, build_clip
from ldm_vs_gan.data.batch import Batch
from ldm_vs_gan.training.family import Family, Phase, StepContext


class _UsesComponents(Family):
    """A small stand-in family: a trainable head makes ViT bridge tokens + prompts from the text
    embedding and latents for the VAE decoder; the loss runs through every frozen path."""

    def __init__(self):
        super().__init__()
        data = {"resolution": 32}
        self.clip = build_clip(OmegaConf.load(CONFIGS / "clip/tiny.yaml"), data_cfg=data)
        self.ae = build_autoencoder(OmegaConf.load(CONFIGS / "autoencoder/tiny.yaml"), data_cfg=data)
        self.head = torch.nn.Linear(self.clip.embed_dim, 32 * 16 + 2 * 32 + 4 * 64)

    def phases(self):
        return [Phase("head", ["head"])]

    def networks(self):
        return {"head": self.head}

    def loss(self, phase, batch, ctx):
        text = self.clip.encode_text(batch.captions)
        h = ctx.nets["head"](text.pooled)  # (B, 512 + 64 + 256)
        B = h.shape[0]
        bridge = h[:, :512].view(B, 32, 4, 4)
        p = h[:, 512:576].view(B, 2, 32)
        vit = self.clip.vit_prompted_forward(bridge, {2: p[:, 0], 3: p[:, 1]})
        img = self.ae.decode(h[:, 576:].view(B, 4, 8, 8))  # (B, 3, 32, 32)
        taps = self.clip.image_block_tokens(img, [1, 4])
        sim = torch.cosine_similarity(self.clip.encode_image(img), text.pooled).mean()
        z = self.ae.encode(img)
        loss = vit.square().mean() + sum(t.square().mean() for t in taps) - sim + z.square().mean()
        return loss, {"loss": loss.detach()}


def test_frozen_weights_bit_identical_after_a_step_and_gradients_reach_inputs():
    torch.manual_seed(0)
    torch.set_num_threads(1)
    fam = _UsesComponents()
    fam.train()  # a parent's train() must not switch the frozen parts to training mode
    assert not fam.clip.training and not fam.ae.training and fam.head.training
    frozen = {
        k: v.clone() for k, v in list(fam.clip.state_dict().items()) + list(fam.ae.state_dict().items())
    }
    head_before = fam.head.weight.detach().clone()
    opt = torch.optim.AdamW(
        [p for n in fam.networks().values() for p in n.parameters()], lr=1e-2, weight_decay=0.1
    )
    batch = Batch(
        torch.zeros(2, 3, 32, 32), ["a small red circle", "a large blue square above a green cross"]
    )
    loss, _ = fam.loss("head", batch, StepContext(nets=fam.networks()))
    loss.backward()
    # gradients reached the trainable inputs through every frozen path ...
    assert fam.head.weight.grad is not None and fam.head.weight.grad[:512].abs().sum() > 0  # via the ViT
    assert fam.head.weight.grad[576:].abs().sum() > 0  # via the VAE decoder and the CLIP image tower
    # ... and none was stored on a frozen weight
    assert all(p.grad is None and not p.requires_grad for p in fam.clip.parameters())
    assert all(p.grad is None and not p.requires_grad for p in fam.ae.parameters())
    opt.step()
    assert not torch.equal(fam.head.weight, head_before)
    after = list(fam.clip.state_dict().items()) + list(fam.ae.state_dict().items())
    assert all(torch.equal(frozen[k], v) for k, v in after)
