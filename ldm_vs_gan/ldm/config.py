"""The typed ``model`` node of the LDM family: one dataclass per sub-node of
``configs/model/ldm.yaml``, key for key, whose defaults are the shipped YAML values (the single
source of truth: a config without a key gets the shipped model). Read it with
``schema.read(LDMConfig, cfg.model, "model")``; see ``ldm_vs_gan/schema.py``."""

from __future__ import annotations

from dataclasses import dataclass, field

from ldm_vs_gan import schema
from ldm_vs_gan.errors import require
from ldm_vs_gan.ldm.objective import LOSSES, T_SAMPLING
from ldm_vs_gan.ldm.samplers import SAMPLERS
from ldm_vs_gan.ldm.schedule import SCHEDULES, TARGETS


@dataclass
class UNetNode:
    """``model.unet``: a registry size plus per-key overrides (None = the size's value)."""

    size: str = "toy"  # registry size (ldm/unet.py SIZES): tiny | toy | thesis128 | sd
    base_channels: int | None = None  # channels of the first level
    channel_mult: list[int] | None = None  # channel multiplier per resolution level
    layers_per_block: int | None = None  # residual blocks per level down (up: one more)
    attention_levels: list[int] | None = None  # level indices with self+cross-attention
    heads: int | None = None  # attention heads (ignored when head_dim is set)
    head_dim: int | None = None  # fixed width per head instead of a fixed number of heads
    transformer_depth: int | None = None  # transformer blocks per attention site
    dropout: float | None = None  # dropout in residual blocks and feed-forwards
    norm_groups: int | None = None  # GroupNorm groups
    mid_attention: bool | None = None  # transformer in the middle block
    gradient_checkpointing: bool = False  # recompute activations in backward (memory for compute)

    def overrides(self) -> dict:
        """Every key but ``size``, for ``unet_config(size, **overrides)`` (None = the size's)."""
        return {k: v for k, v in self.__dict__.items() if k != "size"}


@dataclass
class DiffusionNode:
    """``model.diffusion``: the noise schedule and the training objective."""

    schedule: str = "scaled_linear"  # noise schedule: scaled_linear | linear | cosine
    timesteps: int = 1000  # training timesteps T
    beta_start: float = 0.00085  # beta_1 of the (scaled_)linear schedules
    beta_end: float = 0.012  # beta_T of the (scaled_)linear schedules
    zero_terminal_snr: bool = False  # rescale to zero terminal SNR (needs target v or x0)
    target: str = "v"  # what the UNet predicts: eps | v | x0
    loss: str = "mse"  # per-element distance: mse | l1
    min_snr_gamma: float | None = 5.0  # Min-SNR-gamma loss weighting; None = unweighted
    offset_noise: float = 0.0  # offset noise strength (0 = off)
    t_sampling: str = "uniform"  # timestep sampling: uniform | skewed (t = T u^p)
    t_skew_power: float = 2.0  # p of the skewed timestep sampling

    def check(self, prefix: str) -> None:
        schema.choice(prefix, "schedule", self.schedule, SCHEDULES)
        schema.choice(prefix, "target", self.target, TARGETS)
        schema.choice(prefix, "loss", self.loss, LOSSES)
        schema.choice(prefix, "t_sampling", self.t_sampling, T_SAMPLING)
        require(self.t_skew_power > 0, f"{prefix}.t_skew_power={self.t_skew_power} must be > 0")
        require(
            self.min_snr_gamma is None or self.min_snr_gamma > 0,
            f"{prefix}.min_snr_gamma={self.min_snr_gamma} must be > 0 or null",
        )
        require(
            not (self.zero_terminal_snr and self.target == "eps"),
            f"{prefix}.zero_terminal_snr=true needs {prefix}.target=v or x0 "
            "(eps cannot be turned into x0 at zero SNR; Lin et al. 2024, Sec. 3.2)",
        )


@dataclass
class ConditioningNode:
    """``model.conditioning``: how captions condition the UNet."""

    caption_dropout: float = 0.1  # share of captions replaced by "" in training (CFG)
    pooled: bool = True  # also add the pooled text embedding to the time embedding (SDXL)

    def check(self, prefix: str) -> None:
        require(
            0.0 <= self.caption_dropout < 1.0,
            f"{prefix}.caption_dropout={self.caption_dropout} must be in [0, 1)",
        )


@dataclass
class OptimNode:
    """``model.optim``: the denoiser phase's optimiser."""

    name: str = "adamw"  # optimiser: adamw | adam
    lr: float = 3.0e-3  # peak learning rate (warm-up and decay: the trainer node)
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])  # Adam betas
    eps: float = 1.0e-8  # Adam epsilon
    weight_decay: float = 0.0  # decoupled weight decay
    grad_clip: float | None = 1.0  # max global grad norm (None = no clipping)

    def check(self, prefix: str) -> None:
        schema.choice(prefix, "name", self.name, ("adam", "adamw"))
        require(len(self.betas) == 2, f"{prefix}.betas={list(self.betas)} must be two numbers")


@dataclass
class SamplingNode:
    """``model.sampling``: the defaults of ``generate`` (each overridable per call)."""

    sampler: str = "dpmpp_2m"  # sampler: ddpm | ddim | euler | euler_karras | dpmpp_2m | dpmpp_2m_karras
    steps: int = 20  # denoiser evaluations (x2 with guidance: one batched forward)
    guidance: float = 3.0  # classifier-free guidance scale (1 = no guidance)
    negative_prompt: str | None = ""  # negative prompt ("" or None = the unconditional model)
    eta: float = 0.0  # DDIM eta (ddim only; 0 = deterministic)

    def check(self, prefix: str) -> None:
        schema.choice(prefix, "sampler", self.sampler, list(SAMPLERS))
        schema.at_least(prefix, "steps", self.steps, 1)
        require(self.guidance >= 0, f"{prefix}.guidance={self.guidance} must be >= 0")
        require(0 <= self.eta <= 1, f"{prefix}.eta={self.eta} must be in [0, 1]")


@dataclass
class CacheNode:
    """``model.cache``: memoised frozen encodings in training (exact: ldm/family.py)."""

    latents: bool = False  # memoise VAE latents per sample key (only without augmentation)
    text: bool = True  # memoise CLIP text features per caption
    max_entries: int = 200_000  # max memoised entries per cache


@dataclass
class LDMConfig:
    """``model`` for ``model=ldm`` (configs/model/ldm.yaml)."""

    name: str = "ldm"  # the family's name in run dirs and reports
    _target_: str = "ldm_vs_gan.ldm.family.LDMFamily"  # the Family class
    unet: UNetNode = field(default_factory=UNetNode)  # the denoiser network
    diffusion: DiffusionNode = field(default_factory=DiffusionNode)  # schedule and objective
    conditioning: ConditioningNode = field(default_factory=ConditioningNode)  # text conditioning
    optim: OptimNode = field(default_factory=OptimNode)  # the optimiser
    sampling: SamplingNode = field(default_factory=SamplingNode)  # generate's defaults
    cache: CacheNode = field(default_factory=CacheNode)  # memoised frozen encodings
