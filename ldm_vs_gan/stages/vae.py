"""Stage ``model=vae``: a small diffusers ``AutoencoderKL`` trained on any image data.

The offline counterpart of SD's VAE (only configs differ between the toy and the at-scale
setting; docs/ARCHITECTURE.md "Stages"). Loss (Rombach et al. 2022,
appendix G, without the perceptual and adversarial terms, which the toy world does not need):
``l1 * |x - x'| + l2 * (x - x')^2`` (per pixel, mean) ``+ kl * KL(q(z|x) || N(0, I))`` (summed
over latent elements, averaged over the batch, as SD's ``kl_weight`` 1e-6 is meant), with z
sampled by the reparameterisation trick.

The latent scaling factor (LDM paper s4.3.2: rescale latents to unit variance, SD: 0.18215) is
measured on data and stored with the weights as the buffer ``scaling_factor`` of network
``vae``: a running estimate of 1/std over training batches, replaced by the exact held-out value
at each evaluation. ``evaluate`` logs held-out PSNR; ``preview`` shows originals and
reconstructions side by side.
"""

from __future__ import annotations

import torch
from torch import nn

from ldm_vs_gan.components.autoencoder import build_autoencoder_kl
from ldm_vs_gan.components.config import read_whole_arch
from ldm_vs_gan.data.batch import Batch
from ldm_vs_gan.stages.config import VAEStageConfig
from ldm_vs_gan.training.family import Family, OptimizerSpec, Phase, StepContext


class VAENet(nn.Module):
    """The trained network: ``AutoencoderKL`` plus its measured latent scaling factor."""

    def __init__(self, vae: nn.Module):
        super().__init__()
        self.vae = vae
        self.register_buffer("scaling_factor", torch.zeros(()))  # 0 = not measured yet

    def forward(self, images: torch.Tensor):
        """images (B,3,H,W) -> (reconstruction (B,3,H,W), posterior mean, logvar, z) with
        z = mean + std * eps (B,c,h,w)."""
        dist = self.vae.encode(images).latent_dist
        z = dist.sample()
        return self.vae.decode(z).sample, dist.mean, dist.logvar, z


def psnr(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-image PSNR in dB of images in [-1,1], on the [0,1] scale (peak 1)."""
    mse = (((x.clamp(-1, 1) - y.clamp(-1, 1)) * 0.5) ** 2).flatten(1).mean(1)
    return 10 * torch.log10(1.0 / mse.clamp_min(1e-10))


class VAEStage(Family):
    ema_network = None
    generative = False

    def __init__(
        self,
        arch: dict,
        resolution: int,
        *,
        lr: float = 1e-3,
        l1: float = 1.0,
        l2: float = 0.0,
        kl: float = 1e-6,
        scale_momentum: float = 0.99,
        betas=(0.9, 0.99),
        grad_clip=1.0,
    ):
        super().__init__()
        self.arch, self.resolution = arch, int(resolution)
        self.vae = VAENet(build_autoencoder_kl(arch, self.resolution))
        self.w_l1, self.w_l2, self.w_kl = float(l1), float(l2), float(kl)
        self.scale_momentum = float(scale_momentum)
        self.opt = OptimizerSpec(
            name="adamw", lr=float(lr), betas=tuple(betas), weight_decay=0.0, grad_clip=grad_clip
        )

    @classmethod
    def from_config(cls, cfg) -> VAEStage:
        m = read_whole_arch(VAEStageConfig, cfg.model, "model")
        return cls(
            m.arch,
            int(cfg.data.resolution),
            lr=float(m.lr),
            l1=float(m.l1),
            l2=float(m.l2),
            kl=float(m.kl),
            betas=tuple(m.betas),
            grad_clip=m.grad_clip,
        )

    @property
    def factor(self) -> int:
        return 2 ** (len(self.vae.vae.config.block_out_channels) - 1)

    def phases(self) -> list[Phase]:
        return [Phase("vae", ["vae"], self.opt)]

    def networks(self):
        return {"vae": self.vae}

    def loss(self, phase: str, batch: Batch, ctx: StepContext):
        x = batch.images
        rec, mean, logvar, z = ctx.nets["vae"](x)
        err = rec - x
        l1 = err.abs().mean()
        l2 = (err**2).mean()
        # KL(N(mean, var) || N(0, I)), summed over latent elements, mean over the batch
        kl = 0.5 * (mean**2 + logvar.exp() - 1.0 - logvar).flatten(1).sum(1).mean()
        loss = self.w_l1 * l1 + self.w_l2 * l2 + self.w_kl * kl
        with torch.no_grad():
            s = self.vae.scaling_factor
            inv_std = 1.0 / z.float().std().clamp_min(1e-6)
            s.copy_(
                inv_std if s.item() == 0 else self.scale_momentum * s + (1 - self.scale_momentum) * inv_std
            )
            p = psnr(rec, x).mean()
        return loss, {
            "loss": loss.detach(),
            "l1": l1.detach(),
            "l2": l2.detach(),
            "kl": kl.detach(),
            "psnr": p,
            "scaling_factor": self.vae.scaling_factor.clone(),
        }

    @torch.no_grad()
    def reconstruct(self, images: torch.Tensor) -> torch.Tensor:
        """Deterministic reconstruction through the posterior mode."""
        return self.vae.vae.decode(self.vae.vae.encode(images).latent_dist.mode()).sample

    @torch.no_grad()
    def evaluate(self, batches: list[Batch]) -> dict[str, float]:
        ps, zs = [], []
        for b in batches:
            mode = self.vae.vae.encode(b.images).latent_dist.mode()
            zs.append(mode.flatten())
            ps.append(psnr(self.vae.vae.decode(mode).sample, b.images))
        std = torch.cat(zs).float().std().clamp_min(1e-6)
        self.vae.scaling_factor.fill_(float(1.0 / std))  # exact held-out value, saved with the weights
        p = torch.cat(ps)
        return {
            "psnr": p.mean().item(),
            "psnr_min": p.min().item(),
            "latent_std": std.item(),
            "scaling_factor": float(1.0 / std),
        }

    @torch.no_grad()
    def preview(self, batch: Batch, seeds: list[int]) -> torch.Tensor:
        """Original, reconstruction, original, reconstruction, ... (uint8)."""
        rec = self.reconstruct(batch.images)
        pairs = torch.stack([batch.images, rec], dim=1).flatten(0, 1)  # (2B, 3, H, W)
        return ((pairs.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
