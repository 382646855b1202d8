"""The latent diffusion family (Rombach et al. 2022): our UNet in a frozen autoencoder's latent
space, cross-attending to a frozen CLIP text encoder's tokens.

One phase, ``denoiser`` (AdamW on the UNet). Per step: images -> scaled latents (frozen VAE,
no grad), captions -> text tokens (frozen CLIP, no grad), 10% of captions replaced by "" so the
same network also learns the unconditional model (classifier-free guidance, Ho & Salimans 2022,
Sec. 3.2), then the objective of ``objective.py``. The EMA of ``unet`` (kept by the loop) is what
samples. ``generate`` runs a sampler of ``samplers.py`` over the guided denoiser of
``guidance.py`` and decodes with the VAE.

Frozen encodings are deterministic (VAE posterior mode, CLIP in eval), so they may be memoised
per sample key / caption (``model.cache``) during training. A new entry is encoded on its own (a
batch of one): batched kernels round differently for different batch compositions, and an entry
whose last bits depended on the batch it first came in would make the run depend on its history
(a resumed run starts with an empty cache; an evaluation would fill it with other batches). So a
cached value is a pure function of its input and resume stays exact. Outside training mode
(previews, evaluation) the caches are neither read nor written.

Precomputed shards (``data.precomputed``, ``precomputed.py``) replace both encoders in training:
the batch's ``extras`` hold the scaled posterior (mean, std) and the text features, the latent is
drawn per step as the VAE would draw it (mean, or mean + std * eps from the global RNG), and a
dropped caption takes the features of "" (encoded once by the frozen CLIP).
"""

from __future__ import annotations

from typing import Any

import torch

from ldm_vs_gan import schema
from ldm_vs_gan.data.batch import Batch
from ldm_vs_gan.errors import UserError, bad_value, require
from ldm_vs_gan.ldm import precomputed
from ldm_vs_gan.ldm.config import CacheNode, LDMConfig, UNetNode
from ldm_vs_gan.ldm.guidance import PerImageNoise, guided_denoiser
from ldm_vs_gan.ldm.objective import ObjectiveConfig, diffusion_loss
from ldm_vs_gan.ldm.samplers import SAMPLERS, get_sampler
from ldm_vs_gan.ldm.schedule import NoiseSchedule
from ldm_vs_gan.ldm.unet import UNet, unet_config
from ldm_vs_gan.training.family import Family, OptimizerSpec, Phase, StepContext

SAMPLING_KEYS = ("sampler", "steps", "guidance", "negative_prompt", "eta")


class LDMFamily(Family):
    ema_network = "unet"
    generative = True
    components = ("clip", "autoencoder")
    reads_precomputed = True

    def __init__(self, clip, autoencoder, model_cfg, resolution: int, data_cfg=None):
        """``model_cfg``: an :class:`LDMConfig`, or a ``model`` node (DictConfig, dict or None)
        read onto its defaults (the shipped configs/model/ldm.yaml values)."""
        super().__init__()
        self.clip = clip  # frozen (keeps itself in eval, requires_grad False)
        self.ae = autoencoder  # frozen
        m = model_cfg if isinstance(model_cfg, LDMConfig) else schema.read(LDMConfig, model_cfg, "model")
        self.config = m
        require(
            resolution % autoencoder.factor == 0,
            f"data.resolution={resolution} must be divisible by the autoencoder factor {autoencoder.factor}",
        )
        self.latent_shape = autoencoder.latent_shape(int(resolution))  # (c, h, w)
        self.pooled_text = m.conditioning.pooled
        self.unet = self._build_unet(m.unet, clip, autoencoder)
        d = m.diffusion
        self.schedule = NoiseSchedule(d.schedule, d.timesteps, d.beta_start, d.beta_end, d.zero_terminal_snr)
        self.objective = ObjectiveConfig(
            target=d.target,
            loss=d.loss,
            min_snr_gamma=d.min_snr_gamma,
            offset_noise=d.offset_noise,
            t_sampling=d.t_sampling,
            t_skew_power=d.t_skew_power,
        )
        self.objective.validate(self.schedule)
        self.caption_dropout = m.conditioning.caption_dropout
        o = m.optim
        self._opt = OptimizerSpec(o.name, o.lr, tuple(o.betas), o.eps, o.weight_decay, o.grad_clip)
        s = m.sampling
        self._sampling = {
            "sampler": s.sampler,
            "steps": s.steps,
            "guidance": s.guidance,
            "negative_prompt": s.negative_prompt or "",
            "eta": s.eta,
        }
        self._check_sampling(self._sampling)
        self._setup_caches(m.cache, autoencoder, data_cfg)

    def _build_unet(self, u: UNetNode, clip, autoencoder) -> UNet:
        """The UNet of size ``u.size`` with ``u``'s overrides; in/out channels from the
        autoencoder, context (and pooled) widths from the CLIP."""
        unet = UNet(
            unet_config(
                u.size,
                **u.overrides(),
                in_channels=autoencoder.latent_channels,
                out_channels=autoencoder.latent_channels,
                context_dim=clip.token_dim,
                pooled_dim=clip.embed_dim if self.pooled_text else 0,
            )
        )
        require(
            self.latent_shape[1] % unet.downsample_factor == 0,
            f"latent side {self.latent_shape[1]} must be divisible by 2^(levels-1)="
            f"{unet.downsample_factor}; use fewer model.unet.channel_mult levels",
        )
        return unet

    def _setup_caches(self, c: CacheNode, autoencoder, data_cfg) -> None:
        """Latents are memoised only when deterministic (posterior mode) and not augmented."""
        aug = data_cfg is not None and (
            bool(data_cfg.get("hflip", False)) or data_cfg.get("crop") == "random"
        )
        deterministic = getattr(autoencoder, "latent", "mode") == "mode"
        self._cache_latents = c.latents and deterministic and not aug
        self._cache_max = c.max_entries
        self._cache_text = c.text
        self._lat_cache: dict[str, torch.Tensor] = {}
        self._txt_cache: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        self._null_text: tuple[torch.Tensor, ...] | None = None  # "" for precomputed batches

    @staticmethod
    def build_components(cfg) -> tuple:
        """(frozen CLIP, frozen autoencoder) of ``cfg``, as ``from_config`` builds them (after
        ``seed_all(cfg.seed)``, random weights are the run's); ``precompute`` uses the same."""
        from ldm_vs_gan.components import build_autoencoder, build_clip, check_available

        # every pretrained weight located first: the toy CLIP may train for minutes before the VAE
        check_available(clip=cfg.clip, autoencoder=cfg.autoencoder)
        clip = build_clip(cfg.clip, data_cfg=cfg.data)
        return clip, build_autoencoder(cfg.autoencoder, data_cfg=cfg.data)

    @classmethod
    def from_config(cls, cfg) -> LDMFamily:
        from ldm_vs_gan.data import config

        m = schema.read(LDMConfig, cfg.model, "model")  # a bad model key fails before any work
        clip, ae = cls.build_components(cfg)
        known = config.name_of(cfg.data) in config.schemas()  # run(cfg, data=...) may read any name
        if known and getattr(config.read(cfg.data), "precomputed", False):
            precomputed.check(cfg.data, clip, ae)  # features of other encoders: refused at start-up
        return cls(clip, ae, m, int(cfg.data.resolution), data_cfg=cfg.data)

    # ---- the Family contract ----------------------------------------------------------------

    def phases(self) -> list[Phase]:
        return [Phase("denoiser", ["unet"], self._opt)]

    def networks(self) -> dict[str, torch.nn.Module]:
        return {"unet": self.unet}

    def sampling_defaults(self) -> dict[str, Any]:
        return dict(self._sampling)

    # ---- frozen encodings (memoised: exact, see module doc) -------------------------------------

    @torch.no_grad()
    def encode_images(self, batch: Batch) -> torch.Tensor:
        """(B,3,H,W) in [-1,1] -> scaled latents (B,c,h,w); from the precomputed posterior when
        the batch has one."""
        if batch.extras is not None:
            mean, std = (_extra(batch, k).float() for k in precomputed.LATENT)
            if self.ae.latent == "mode":
                return mean
            return mean + std * torch.randn_like(mean)  # the draw encode makes (global RNG, same shape)
        if not (self._cache_latents and self.training and len(batch.keys) == len(batch)):
            return self.ae.encode(batch.images).float()
        zs = []
        for i, k in enumerate(batch.keys):
            z = self._lat_cache.get(k)
            if z is None:  # alone, also when the cache is full: values never depend on the batch
                z = self.ae.encode(batch.images[i : i + 1]).float()[0].detach().cpu()
                if len(self._lat_cache) < self._cache_max:
                    self._lat_cache[k] = z
            zs.append(z)
        return torch.stack(zs).to(batch.images.device)

    @torch.no_grad()
    def encode_text(self, captions: list[str]) -> tuple[torch.Tensor, ...]:
        """captions -> the UNet's conditioning: (tokens (B,L,D) of the CLIP's clip.token_layer,
        mask (B,L) bool), plus pooled (B,E) when the UNet takes it (model.conditioning.pooled)."""
        if not (self._cache_text and self.training):
            f = self.clip.encode_text(list(captions))
            out = (f.tokens.float(), f.mask, f.pooled.float())
            return out if self.pooled_text else out[:2]
        missing = sorted({c for c in captions if c not in self._txt_cache})
        if len(self._txt_cache) + len(missing) > self._cache_max:
            self._txt_cache.clear()
        for c in missing:  # alone: the value must not depend on the batch (module doc)
            f = self.clip.encode_text([c])
            self._txt_cache[c] = (f.tokens[0].float(), f.mask[0], f.pooled[0].float())
        out = tuple(torch.stack(v) for v in zip(*(self._txt_cache[c] for c in captions)))
        return out if self.pooled_text else out[:2]

    @torch.no_grad()
    def condition(self, batch: Batch, drop: list[bool]) -> tuple[torch.Tensor, ...]:
        """``encode_text`` of the batch's captions with the ``drop``ped ones replaced by "";
        from the precomputed text features when the batch has them."""
        if batch.extras is None:
            return self.encode_text(["" if d else c for c, d in zip(batch.captions, drop)])
        feats = [_extra(batch, k) for k in precomputed.TEXT]  # tokens, mask, pooled
        if any(drop):
            if self._null_text is None:  # alone, as the text cache encodes "" (module doc)
                f = self.clip.encode_text([""])
                self._null_text = (f.tokens[0].float(), f.mask[0], f.pooled[0].float())
            rows = torch.tensor(drop, device=feats[0].device)
            feats = [
                torch.where(rows.view(-1, *[1] * (f.dim() - 1)), n.to(f.device, f.dtype), f)
                for f, n in zip(feats, self._null_text)
            ]
        out = (feats[0].float(), feats[1], feats[2].float())
        return out if self.pooled_text else out[:2]

    # ---- training -----------------------------------------------------------------------------

    def loss(self, phase: str, batch: Batch, ctx: StepContext) -> tuple[torch.Tensor, dict[str, float]]:
        if phase != "denoiser":
            raise bad_value("phase", phase, ["denoiser"])
        x0 = self.encode_images(batch)
        drop = [False] * len(batch)
        if self.caption_dropout > 0:
            drop = (torch.rand(len(batch)) < self.caption_dropout).tolist()  # global RNG: checkpointed
        cond = [v.to(x0.device) for v in self.condition(batch, drop)]
        net = ctx.nets["unet"]
        loss, logs = diffusion_loss(
            lambda x, t, **kw: net(x, t, **kw),
            x0,
            dict(zip(("context", "mask", "pooled"), cond)),
            self.schedule,
            self.objective,
        )
        return loss, logs

    STRATA = 4  # timestep strata of the validation loss

    @torch.no_grad()
    def evaluate(self, batches: list[Batch]) -> dict[str, float]:
        """Held-out denoising loss (unweighted MSE to the target) at the centre of each of
        :attr:`STRATA` equal timestep strata, with noise from a fixed seed: the same draw at every
        evaluation, so the curve moves only with the weights (overfitting shows per noise level)."""
        g = torch.Generator().manual_seed(0)
        T, out = self.schedule.T, {}
        for b in batches:
            x0 = self.encode_images(b)
            cond = [v.to(x0.device) for v in self.condition(b, [False] * len(b))]
            kw = dict(zip(("context", "mask", "pooled"), cond))
            for k in range(self.STRATA):
                t = torch.full((len(b),), (2 * k + 1) * T // (2 * self.STRATA), device=x0.device)
                eps = torch.randn(x0.shape, generator=g).to(x0.device, x0.dtype)
                target = self.schedule.target(self.objective.target, x0, eps, t)
                err = (self.unet(self.schedule.add_noise(x0, eps, t), t, **kw).float() - target.float()) ** 2
                key = f"val_loss/t{k * T // self.STRATA:04d}-{(k + 1) * T // self.STRATA - 1:04d}"
                out[key] = out.get(key, 0.0) + float(err.mean()) * len(b)
        n = sum(len(b) for b in batches)
        return {k: v / n for k, v in out.items()} if n else {}

    # ---- sampling -----------------------------------------------------------------------------

    @staticmethod
    def _check_sampling(s: dict) -> None:
        if s["sampler"] not in SAMPLERS:
            raise bad_value("sampler", s["sampler"], SAMPLERS)
        if isinstance(s["steps"], bool) or not isinstance(s["steps"], int) or s["steps"] < 1:
            raise bad_value("steps", s["steps"], "an integer >= 1")
        require(s["guidance"] >= 0, f"guidance={s['guidance']} must be >= 0")
        require(0 <= s["eta"] <= 1, f"eta={s['eta']} must be in [0, 1]")

    @torch.no_grad()
    def generate(self, captions: list[str], seeds, **sampling: Any) -> torch.Tensor:
        """uint8 (B,3,H,W). Image i depends only on (captions[i], seeds[i], sampling): its initial
        latent and every stochastic step's noise come from its own generator (int64 seed)."""
        unknown = sorted(set(sampling) - set(SAMPLING_KEYS))
        if unknown:
            raise bad_value("sampling option", unknown[0], SAMPLING_KEYS)
        s = {**self._sampling, **{k: v for k, v in sampling.items() if v is not None}}
        s["steps"], s["guidance"], s["eta"] = int(s["steps"]), float(s["guidance"]), float(s["eta"])
        self._check_sampling(s)
        seeds = torch.as_tensor(seeds, dtype=torch.int64).reshape(-1).tolist()
        require(len(captions) == len(seeds), f"generate: {len(captions)} captions but {len(seeds)} seeds")
        neg = s["negative_prompt"]
        negs = [neg] * len(captions) if isinstance(neg, str) else list(neg)
        require(len(negs) == len(captions), "negative_prompt: one string, or one per caption")

        device = next(self.unet.parameters()).device
        was_training = self.unet.training
        self.unet.eval()
        try:
            cond = tuple(v.to(device) for v in self.encode_text(list(captions)))
            guided = s["guidance"] != 1.0 or any(negs)
            uncond = tuple(v.to(device) for v in self.encode_text(negs)) if guided else None
            denoise = guided_denoiser(
                self.unet, self.schedule, self.objective.target, cond, uncond, s["guidance"]
            )
            noise = PerImageNoise(seeds, self.latent_shape, device=device)
            x_T = noise()
            sampler = get_sampler(s["sampler"])
            kw = {"eta": s["eta"]} if s["sampler"] == "ddim" else {}
            z0 = sampler(denoise, x_T, self.schedule, s["steps"], noise, **kw)
            images = self.ae.decode(z0.float()).float().clamp(-1, 1)
        finally:
            self.unet.train(was_training)
        return ((images + 1) * 127.5).round().to(torch.uint8)


def _extra(batch: Batch, name: str) -> torch.Tensor:
    """A precomputed tensor of ``batch``, or one line saying the shards lack it."""
    if name not in batch.extras:
        raise UserError(
            f"the precomputed shards (data.shards) have no {name!r} array (they have "
            f"{sorted(batch.extras)}): write them with python -m ldm_vs_gan.precompute"
        )
    return batch.extras[name]
