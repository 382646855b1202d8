"""The GALIP family (Tao et al., CVPR 2023): Mate-G and Mate-D around one frozen CLIP.

Phases, in order (the loop runs both every step): ``discriminator`` (Adam lr 4e-4, betas (0, 0.9))
then ``generator`` (Adam lr 1e-4, betas (0, 0.9)); no LR schedule, no EMA by default (official).
The frozen CLIP is shared by the text side (sentence embedding), Mate-D (tapped patch tokens and,
for the generator's CLIP-similarity term, the image embedding) and Mate-G (the prompted ViT pass).
Objectives: ``galip/losses.py``; networks: ``galip/mate_g.py``, ``galip/mate_d.py``; default
sizes that scale with the ViT: ``galip/arch.py``.
"""

from __future__ import annotations

from typing import Any

import torch

from ldm_vs_gan.data.batch import Batch
from ldm_vs_gan.errors import bad_value, require
from ldm_vs_gan.galip import arch
from ldm_vs_gan.galip.augment import translate
from ldm_vs_gan.galip.config import GALIPConfig, GeneratorNode
from ldm_vs_gan.galip.config import read as read_model
from ldm_vs_gan.galip.losses import (
    clip_similarity,
    hinge_fake,
    hinge_real,
    ma_gp,
    mismatched,
    mode_seeking,
)
from ldm_vs_gan.galip.mate_d import MateD
from ldm_vs_gan.galip.mate_g import MateG
from ldm_vs_gan.galip.vit import taps_and_embedding
from ldm_vs_gan.training.family import Family, OptimizerSpec, Phase, StepContext


def _blocks(key: str, given: list[int] | None, official: tuple[int, ...], depth: int) -> list[int]:
    """1-based ViT blocks: ``given`` checked against ``depth``, or ``official`` (for 12 blocks)
    mapped to ``depth``."""
    return arch.check_blocks(key, given, depth) if given is not None else arch.map_blocks(official, depth)


class GALIPFamily(Family):
    generative = True
    components = ("clip",)

    def __init__(self, clip, model_cfg, resolution: int):
        """``model_cfg``: a :class:`GALIPConfig`, or a ``model`` node (DictConfig, dict or None)
        read onto its defaults (the shipped configs/model/galip.yaml values)."""
        super().__init__()
        self.clip = clip  # frozen (FrozenCLIP keeps itself in eval, requires_grad False)
        m = model_cfg if isinstance(model_cfg, GALIPConfig) else read_model(model_cfg)
        self.config = m
        depth, (gh, gw) = clip.vit_layers, clip.vit_grid
        require(gh == gw, f"GALIP needs a square ViT patch grid; clip gives {gh}x{gw}")
        # where Mate-D taps the ViT (1-based blocks; None = the official choice mapped)
        self.taps = _blocks("model.discriminator.taps", m.discriminator.taps, arch.OFFICIAL_TAPS, depth)
        self.z_dim = m.z_dim
        self.generator = self._build_generator(m.generator, clip, int(resolution))
        d = m.discriminator
        self.discriminator = MateD(
            width=clip.vit_width,
            grid=(gh, gw),
            n_taps=len(self.taps),
            sentence_dim=clip.embed_dim,
            out_channels=d.out_channels,
            assessor_channels=d.assessor_channels,
        )
        # ---- objectives and optimisers ----
        loss = m.loss
        self.clip_weight, self.gp_k, self.gp_p = loss.clip_weight, loss.magp_k, loss.magp_p
        self.mismatch_weight = loss.mismatch_weight
        # Mode-seeking term (MSGAN, Mao et al., CVPR 2019, eq. 3); 0 = off (official GALIP).
        self.mode_seeking = loss.mode_seeking
        # DiffAugment translation of every image before the frozen CLIP (galip/augment.py); 0 = off.
        self.translation = m.augment.translation
        # One fake batch per step, made in the D phase and reused (graph kept) by the G phase, as
        # the official training loop does, where the loop allows it (ctx.share_across_phases);
        # false = a fresh no-grad fake in the D phase and a new one (new z) in the G phase (costs
        # one more G forward and ViT pass per image).
        self.share_fake = m.share_fake
        o = m.optim
        betas = tuple(o.betas)
        self._opt_g = OptimizerSpec("adam", o.lr_g, betas, grad_clip=o.grad_clip_g)
        self._opt_d = OptimizerSpec("adam", o.lr_d, betas, grad_clip=o.grad_clip_d)
        # Instance attribute: the engine keys its EMA on it (None: no EMA, the official setting).
        self.ema_network = "generator" if m.ema else None
        self._truncation = m.sampling.truncation

    def _build_generator(self, g: GeneratorNode, clip, resolution: int) -> MateG:
        """Mate-G: prompts at ``g.prompt_blocks``; image-generator sizes from the ViT grid to
        ``resolution`` and DF-GAN channels, unless ``g`` gives them."""
        depth, (gh, _) = clip.vit_layers, clip.vit_grid
        prompt_blocks = _blocks(
            "model.generator.prompt_blocks", g.prompt_blocks, arch.OFFICIAL_PROMPT_BLOCKS, depth
        )
        sizes = list(g.sizes) if g.sizes is not None else arch.generator_sizes(gh, resolution)
        require(
            sizes[-1] == resolution,
            f"model.generator.sizes={sizes} must end at data.resolution={resolution}",
        )
        channels = (
            list(g.channels)
            if g.channels is not None
            else arch.generator_channels(len(sizes), g.ngf, g.max_mult)
        )
        require(
            len(channels) == len(sizes),
            f"model.generator.channels={channels} needs one entry per block of sizes={sizes}",
        )
        fusion = g.fusion_channels if g.fusion_channels is not None else g.ngf * g.max_mult
        return MateG(
            clip,
            sentence_dim=clip.embed_dim,
            z_dim=self.z_dim,
            bridge_channels=g.bridge_channels,
            bridge_mid_channels=g.bridge_mid_channels,
            bridge_blocks=g.bridge_blocks,
            prompt_blocks=prompt_blocks,
            fusion_channels=fusion,
            sizes=sizes,
            channels=channels,
            vit_mix=g.vit_mix,
        )

    @classmethod
    def from_config(cls, cfg) -> GALIPFamily:
        from ldm_vs_gan.components import build_clip, check_available

        m = read_model(cfg.model)  # a bad model key fails before any work
        check_available(clip=cfg.clip)  # before anything is built or trained
        clip = build_clip(cfg.clip, data_cfg=cfg.data)
        return cls(clip, m, int(cfg.data.resolution))

    # ---- the Family contract ----------------------------------------------------------------

    def phases(self) -> list[Phase]:
        # With a shared fake the D phase records G's graph for the G phase (see Phase).
        return [
            Phase(
                "discriminator",
                ["discriminator"],
                self._opt_d,
                records_graph_for=["generator"] if self.share_fake else [],
            ),
            Phase("generator", ["generator"], self._opt_g),
        ]

    def networks(self) -> dict[str, torch.nn.Module]:
        return {"generator": self.generator, "discriminator": self.discriminator}

    def sentence(self, captions: list[str]) -> torch.Tensor:
        """(B, E) sentence embeddings from the frozen text tower (no graph)."""
        with torch.no_grad():
            return self.clip.encode_text(list(captions)).pooled.detach()

    @torch.no_grad()
    def caption_scores(self, images: torch.Tensor, captions: list[str]) -> torch.Tensor:
        """Mate-D's logit for each (image in [-1, 1], caption) pair, (B,): how well the
        discriminator judges that the caption fits (a training-health reading, not a loss)."""
        taps = self.clip.image_block_tokens(images, self.taps)
        return self.discriminator(taps, self.sentence(captions)).float()

    def _step_sentence(self, batch: Batch, ctx: StepContext) -> torch.Tensor:
        """``sentence`` of the micro-batch, computed once per step: both phases see the same
        micro-batch and the same ``ctx.scratch``, and the embedding carries no graph."""
        if "sentence" not in ctx.scratch:
            ctx.scratch["sentence"] = self.sentence(batch.captions)
        return ctx.scratch["sentence"]

    def _noise(self, n: int, device) -> torch.Tensor:
        return torch.randn(n, self.z_dim, device=device)

    def loss(self, phase: str, batch: Batch, ctx: StepContext) -> tuple[torch.Tensor, dict[str, float]]:
        if phase == "discriminator":
            return self._d_loss(batch, ctx)
        if phase == "generator":
            return self._g_loss(batch, ctx)
        raise bad_value("phase", phase, ["discriminator", "generator"])

    def _fake(
        self, G, sent: torch.Tensor
    ) -> tuple[torch.Tensor, list[torch.Tensor], torch.Tensor, torch.Tensor]:
        """One fake batch for the step: (z (B, z_dim), Mate-D taps [(B, C, gh, gw)], CLIP image
        embedding (B, E), images (B, 3, H, W)). With the mode-seeking term on, the second half of
        the batch repeats the first half's sentences with new z, so every pair (i, i + B/2)
        shares a caption (MSGAN needs two images of one condition)."""
        b = sent.shape[0]
        require(
            self.mode_seeking <= 0 or b >= 2, "model.loss.mode_seeking needs a per-rank batch of at least 2"
        )
        sent = self._g_sentences(sent)
        z = self._noise(b, sent.device)
        fake = G(z, sent)
        # one frozen-ViT pass (on a shifted copy when the augmentation is on)
        taps, emb = taps_and_embedding(self.clip, translate(fake, self.translation), self.taps)
        return z, taps, emb, fake

    def _g_sentences(self, sent: torch.Tensor) -> torch.Tensor:
        """The sentences the fake batch was made from (see ``_fake``)."""
        if self.mode_seeking <= 0:
            return sent
        half = sent.shape[0] // 2
        return torch.cat([sent[:half], sent[:half], sent[2 * half :]], dim=0)

    def _d_loss(self, batch: Batch, ctx: StepContext):
        G, D = ctx.nets["generator"], ctx.nets["discriminator"]
        images = batch.images
        sent = self._step_sentence(batch, ctx)
        if self.share_fake and ctx.share_across_phases and torch.is_grad_enabled():
            # The loop turned G's requires_grad on for this phase (records_graph_for), so the
            # graph the G phase trains through is recorded; the D loss below sees detached
            # features, so this phase's backward puts nothing into G's gradients.
            z, fake_taps, emb, fake = self._fake(G, sent)
            ctx.scratch["fake"] = (z, fake_taps, emb, fake)
            fake_taps = [t.detach() for t in fake_taps]
        else:
            with torch.no_grad():
                _, fake_taps, _, _ = self._fake(G, sent)
        with torch.no_grad():
            real_taps = self.clip.image_block_tokens(translate(images, self.translation), self.taps)
        # MA-GP differentiates D with respect to the real CLIP features and the sentence.
        real_taps = [t.detach().requires_grad_(True) for t in real_taps]
        sent_gp = sent.detach().clone().requires_grad_(True)
        # D sees views of the leaves, not the leaves: torch's FlopCounterMode (the engine measures
        # the first step with it) hooks module inputs and fails in autograd.grad on leaf inputs.
        # Real image with its caption and with another sample's caption, on one feature pass.
        real, mis = D([t.view_as(t) for t in real_taps], sent_gp.view_as(sent_gp), mismatched(sent))
        fk = D(fake_taps, self._g_sentences(sent))
        l_real, l_fake, l_mis = hinge_real(real), hinge_fake(fk), hinge_fake(mis)
        gp = ma_gp(real, [*real_taps, sent_gp], k=self.gp_k, p=self.gp_p, grad_scale=ctx.grad_scale)
        total = l_real + self.mismatch_weight * (l_fake + l_mis) + gp
        logs = {
            "real": l_real.detach(),
            "fake": l_fake.detach(),
            "mismatch": l_mis.detach(),
            "ma_gp": gp.detach(),
            "logit_real": real.detach().float().mean(),
            "logit_fake": fk.detach().float().mean(),
        }
        return total, logs

    def _g_loss(self, batch: Batch, ctx: StepContext):
        G, D = ctx.nets["generator"], ctx.nets["discriminator"]
        sent = self._step_sentence(batch, ctx)
        shared = ctx.scratch.pop("fake", None)  # popped: the graph is freed by this phase's backward
        if shared is not None:
            z, taps, emb, fake = shared  # the D phase's fake (G is not updated in between)
        else:
            z, taps, emb, fake = self._fake(G, sent)
        sent_g = self._g_sentences(sent)
        logit = D(taps, sent_g)
        sim = clip_similarity(emb, sent_g)
        adv = -logit.float().mean()
        total = adv - self.clip_weight * sim
        logs = {"adv": adv.detach(), "clip_sim": sim.detach()}
        if self.mode_seeking > 0:
            ms = mode_seeking(fake, z)
            total = total + self.mode_seeking * ms
            logs["mode_seeking"] = ms.detach()
        return total, logs

    # ---- sampling ---------------------------------------------------------------------------

    def sampling_defaults(self) -> dict[str, Any]:
        """GAN sampling has one knob: truncation of z (None = plain N(0, I), as official)."""
        return {"truncation": self._truncation}

    def noise_for(self, seeds, truncation: float | None = None) -> torch.Tensor:
        """(B, z_dim) noise, row i from its own torch.Generator seeded with seeds[i] (int64), so
        any image can be regenerated alone. Truncation t > 0 resamples |z| > t (BigGAN's trick)."""
        rows = []
        for s in torch.as_tensor(seeds, dtype=torch.int64).tolist():
            gen = torch.Generator().manual_seed(int(s) & 0xFFFF_FFFF_FFFF_FFFF)
            z = torch.randn(self.z_dim, generator=gen)
            if truncation is not None:
                for _ in range(1000):
                    bad = z.abs() > truncation
                    if not bad.any():
                        break
                    z[bad] = torch.randn(int(bad.sum()), generator=gen)
                z = z.clamp(-truncation, truncation)
            rows.append(z)
        return torch.stack(rows)

    @torch.no_grad()
    def generate(self, captions: list[str], seeds, **sampling: Any) -> torch.Tensor:
        unknown = set(sampling) - {"truncation"}
        if unknown:
            raise bad_value("sampling option", sorted(unknown)[0], ["truncation"])
        trunc = sampling.get("truncation", self._truncation)
        if trunc is not None and not float(trunc) > 0:
            raise bad_value("truncation", trunc, "a number > 0, or None")
        require(len(captions) == len(seeds), f"generate: {len(captions)} captions but {len(seeds)} seeds")
        device = next(self.generator.parameters()).device
        z = self.noise_for(seeds, None if trunc is None else float(trunc)).to(device)
        sent = self.clip.encode_text(list(captions)).pooled
        x = self.generator(z, sent).float().clamp(-1.0, 1.0)  # no tanh in G: clamp at sampling
        return ((x + 1.0) * 127.5).round().to(torch.uint8)
