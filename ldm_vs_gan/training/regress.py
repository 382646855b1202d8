"""The engine's test family: a tiny conditional regression model (no diffusion, no GAN).

It predicts the image from a fixed hash embedding of the caption (an MLP "generator") and has a
second phase, a "critic" that learns to predict each image's mean colour from the generator's
(detached) output, so the loop is exercised with two phases, two optimizers, an EMA network and a
network that is used plainly (not DDP-wrapped) in the other phase. Losses are deterministic
functions of the batch (no sampling noise), which makes 1-process vs 2-process runs comparable.

``model.nan_at_images`` injects a NaN loss from that many images seen on (to test the guard).
"""

from __future__ import annotations

import hashlib

import torch
from torch import nn

from ldm_vs_gan.data.batch import Batch
from ldm_vs_gan.errors import require
from ldm_vs_gan.training.family import Family, OptimizerSpec, Phase, StepContext


def caption_embedding(captions: list[str], dim: int) -> torch.Tensor:
    """(B, dim) in [-1, 1]: bytes of SHA-256 chains of the caption; fixed, not learned."""
    rows = []
    for c in captions:
        raw = b""
        block = c.encode()
        while len(raw) < dim:
            block = hashlib.sha256(block).digest()
            raw += block
        rows.append(torch.frombuffer(bytearray(raw[:dim]), dtype=torch.uint8))
    return torch.stack(rows).float() / 127.5 - 1.0


class Generator(nn.Module):
    def __init__(self, embed_dim: int, hidden: int, resolution: int):
        super().__init__()
        self.resolution = resolution
        self.net = nn.Sequential(
            nn.Linear(embed_dim + 1, hidden),
            nn.SiLU(),
            nn.Linear(hidden, hidden),
            nn.SiLU(),
            nn.Linear(hidden, 3 * resolution * resolution),
        )

    def forward(self, emb: torch.Tensor, z: torch.Tensor) -> torch.Tensor:  # (B,E),(B,1) -> (B,3,H,W)
        out = self.net(torch.cat([emb, z], dim=1))
        return torch.tanh(out).view(-1, 3, self.resolution, self.resolution)


class RegressFamily(Family):
    ema_network = "generator"
    generative = True

    def __init__(
        self,
        embed_dim: int,
        hidden: int,
        resolution: int,
        lr: float,
        grad_clip: float | None,
        nan_at_images: int | None,
    ):
        super().__init__()
        self.embed_dim = embed_dim
        self.generator = Generator(embed_dim, hidden, resolution)
        self.critic = nn.Sequential(nn.Flatten(), nn.Linear(3 * resolution * resolution, 3))
        self.lr, self.grad_clip, self.nan_at_images = lr, grad_clip, nan_at_images

    @classmethod
    def from_config(cls, cfg) -> RegressFamily:
        m = cfg.model
        require(int(m.hidden) > 0, f"model.hidden={m.hidden!r} must be a positive integer")
        return cls(
            int(m.embed_dim),
            int(m.hidden),
            int(cfg.data.resolution),
            float(m.lr),
            m.get("grad_clip"),
            m.get("nan_at_images"),
        )

    def phases(self) -> list[Phase]:
        spec = OptimizerSpec(name="adamw", lr=self.lr, grad_clip=self.grad_clip)
        return [
            Phase("generator", ["generator"], spec),
            Phase("critic", ["critic"], OptimizerSpec(name="adam", lr=self.lr)),
        ]

    def networks(self) -> dict[str, nn.Module]:
        return {"generator": self.generator, "critic": self.critic}

    def _emb(self, captions, device):
        return caption_embedding(captions, self.embed_dim).to(device)

    def loss(self, phase: str, batch: Batch, ctx: StepContext):
        emb = self._emb(batch.captions, batch.images.device)
        z = torch.zeros(len(batch), 1, device=emb.device)
        if phase == "generator":
            pred = ctx.nets["generator"](emb, z)
            loss = (pred.float() - batch.images).pow(2).mean()
            logs = {"mse": loss.detach()}
        else:
            with torch.no_grad():
                fake = ctx.nets["generator"](emb, z)
            target = batch.images.mean(dim=(2, 3))
            loss = (ctx.nets["critic"](fake.float()).float() - target).pow(2).mean()
            logs = {}
        if self.nan_at_images is not None and ctx.images_seen >= self.nan_at_images:
            loss = loss * float("nan")
        return loss, logs

    @torch.no_grad()
    def generate(self, captions, seeds, **sampling) -> torch.Tensor:
        device = next(self.generator.parameters()).device
        seeds = torch.as_tensor(seeds, dtype=torch.int64)
        # z from each image's own seed: image i depends only on (caption i, seed i)
        z = torch.stack(
            [torch.randn(1, generator=torch.Generator().manual_seed(int(s))) * 0.1 for s in seeds]
        )
        img = self.generator(self._emb(captions, device), z.to(device))
        return ((img.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)

    @torch.no_grad()
    def evaluate(self, batches: list[Batch]) -> dict[str, float]:
        err, n = 0.0, 0
        for b in batches:
            pred = self.generator(
                self._emb(b.captions, b.images.device), torch.zeros(len(b), 1, device=b.images.device)
            )
            err += float((pred - b.images).pow(2).mean()) * len(b)
            n += len(b)
        return {"mse": err / max(n, 1)}

    def flops_per_image(self):
        return None
