"""The components room's config schemas: the single source of the defaults of the ``clip`` and
``autoencoder`` nodes (``configs/clip/*.yaml``, ``configs/autoencoder/*.yaml``). Field defaults
are the shipped YAML values; the YAML files document each key. A plug-in's weight source
(``ldm_vs_gan.plugins``, e.g. the toy world's ``source: toy``) brings its own schema.

A ``clip`` / ``autoencoder`` node is read by its ``source``: every source has one schema (the
keys any of its files may set, defaults = that source's shipped file), and the other shipped files
of a source are subclasses that only change defaults (e.g. ``vit_b32_openai``). :func:`read_clip`
and :func:`read_autoencoder` give the typed object, or one line naming ``clip.<key>`` /
``autoencoder.<key>`` (unknown key, wrong type, a value its ``check`` refuses).

``arch`` (an open_clip / AutoencoderKL architecture dict) is taken as a whole: a node that gives
one keeps exactly its keys (the builders have their own defaults for keys it leaves out); a node
without one gets the shipped architecture.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

from omegaconf import DictConfig, OmegaConf

from ldm_vs_gan import schema
from ldm_vs_gan.errors import bad_value

# built-in weight sources; plug-ins add their own (ldm_vs_gan.plugins: toy)
CLIP_SOURCES = ("pretrained", "file", "local-dir", "run", "random")
AE_SOURCES = ("hub", "local-dir", "run", "random")
LATENTS = ("mode", "sample")

TINY_CLIP_ARCH = {
    "embed_dim": 32,
    "vision_cfg": {
        "image_size": None,
        "grid": 4,
        "patch_size": None,
        "width": 32,
        "layers": 4,
        "head_width": 16,
    },
    "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 2},
}
TINY_VAE_ARCH = {
    "channels": [8, 16, 16, 16],
    "factor": None,
    "layers_per_block": 1,
    "latent_channels": 4,
    "norm_num_groups": 4,
    "mid_block_attention": False,
}


def arch_field(value: dict):
    return field(default_factory=lambda: copy.deepcopy(value))


def check_arch(prefix: str, arch) -> None:
    if arch is not None and not isinstance(arch, dict):
        raise bad_value(f"{prefix}.arch", arch, "a mapping (an architecture) or null")


# ============================================================================ clip


@dataclass
class CLIPNode:
    """The keys of a ``clip`` node (each source reads the ones it needs; the others may stay, so a
    shipped file can switch source with one override, e.g. ``clip=tiny clip.source=file``)."""

    # Where the weights come from: pretrained | file | local-dir | run | random, or a plug-in's (toy).
    source: str = ""
    # Which text-encoder layer gives the token features (-1 = final normed output; 0..L = layer).
    token_layer: int = -1
    # A stage-training source (toy): overrides of the stage's training config (part of its cache key).
    stage_overrides: list[str] = field(default_factory=list)
    # open_clip model name (pretrained; file/random: instead of ``arch``).
    model: str | None = None
    # source=pretrained: open_clip pretrained tag.
    pretrained: str | None = None
    # source=pretrained: Hugging Face repo of the weights (null = open_clip's registry entry).
    hf_repo: str | None = None
    # The weights file (file), open_clip folder (local-dir) or CLIP-stage run dir (run).
    path: str | None = None
    # open_clip model config (file/random); vision_cfg.image_size null = data resolution,
    # grid = patches per side.
    arch: Any = None
    # Tokenizer context length (null = the model's).
    context_length: int | None = None
    # Force QuickGELU activations (null = the model's / pretrained entry's).
    quick_gelu: bool | None = None
    # Hugging Face cache folder (null = the default cache).
    cache_dir: str | None = None
    # Download missing weights (otherwise a missing weight is an error saying how to get it).
    allow_download: bool = False

    def check(self, prefix: str) -> None:
        schema.choice(prefix, "source", self.source, clip_sources())
        check_arch(prefix, self.arch)


@dataclass
class RandomCLIP(CLIPNode):
    """``configs/clip/tiny.yaml``: an untrained CLIP built from ``arch``."""

    source: str = "random"  # no weights (random initialisation)
    arch: Any = arch_field(TINY_CLIP_ARCH)  # the tiny architecture


@dataclass
class PretrainedCLIP(CLIPNode):
    """``source: pretrained``: open_clip weights from the local cache. The defaults name LAION's
    ViT-B/32; ``hf_repo`` stays null here (open_clip's registry entry for model + pretrained), so a
    node that changes ``model`` without ``hf_repo`` never gets another model's repo."""

    source: str = "pretrained"  # open_clip's pretrained registry (the local HF cache)
    model: str | None = "ViT-B-32"  # open_clip model name
    pretrained: str | None = "laion2b_s34b_b79k"  # open_clip pretrained tag


@dataclass
class LaionViTB32CLIP(PretrainedCLIP):
    """``configs/clip/vit_b32_laion.yaml``: LAION ViT-B/32."""

    hf_repo: str | None = "laion/CLIP-ViT-B-32-laion2B-s34B-b79K"  # the weights' HF repo


@dataclass
class OpenAIViTB32CLIP(PretrainedCLIP):
    """``configs/clip/vit_b32_openai.yaml``: OpenAI's ViT-B/32 (QuickGELU)."""

    pretrained: str | None = "openai"  # open_clip pretrained tag
    hf_repo: str | None = "timm/vit_base_patch32_clip_224.openai"  # the weights' HF repo
    quick_gelu: bool | None = True  # OpenAI's weights were trained with QuickGELU


@dataclass
class ViTL14CLIP(PretrainedCLIP):
    """``configs/clip/vit_l14.yaml``: LAION ViT-L/14."""

    model: str | None = "ViT-L-14"  # open_clip model name
    pretrained: str | None = "laion2b_s32b_b82k"  # open_clip pretrained tag
    hf_repo: str | None = "laion/CLIP-ViT-L-14-laion2B-s32B-b82K"  # the weights' HF repo


@dataclass
class RunCLIP(CLIPNode):
    """``configs/clip/run.yaml``: a CLIP-stage run of one's own (``clip.path``)."""

    source: str = "run"  # a run directory of the CLIP stage (model=clip)
    token_layer: int = 0  # the small stage CLIP's token embeddings, as for the toy CLIP


# schema of a ``clip`` node, by its source; every shipped file, by its name
CLIP_SCHEMAS = {
    "random": RandomCLIP,
    "pretrained": PretrainedCLIP,
    "file": CLIPNode,
    "local-dir": CLIPNode,
    "run": RunCLIP,
}
CLIP_FILES = {
    "run": RunCLIP,
    "tiny": RandomCLIP,
    "vit_b32_laion": LaionViTB32CLIP,
    "vit_b32_openai": OpenAIViTB32CLIP,
    "vit_l14": ViTL14CLIP,
}


# ============================================================================ autoencoder


@dataclass
class AutoencoderNode:
    """The keys of an ``autoencoder`` node (each source reads the ones it needs; the others may
    stay, so a shipped file can switch source with one override)."""

    # Where the weights come from: hub | local-dir | run | random, or a plug-in's (toy).
    source: str = ""
    # Latents given to the LDM: mode (posterior mean, deterministic) | sample.
    latent: str = "mode"
    # A stage-training source (toy): overrides of the stage's training config (part of its cache key).
    stage_overrides: list[str] = field(default_factory=list)
    # source=hub: Hugging Face repo of the AutoencoderKL.
    repo: str | None = None
    # Subfolder holding the VAE (hub, local-dir; null = the root).
    subfolder: str | None = None
    # A local AutoencoderKL folder (local-dir) or VAE-stage run dir (run).
    path: str | None = None
    # source=random: AutoencoderKL architecture (factor null = 2 ** (len(channels) - 1)).
    arch: Any = None
    # Latent scaling factor (null = the model config's; random: 1.0).
    scaling_factor: float | None = None
    # Hugging Face cache folder (null = the default cache).
    cache_dir: str | None = None
    # Download missing weights (otherwise a missing weight is an error saying how to get it).
    allow_download: bool = False

    def check(self, prefix: str) -> None:
        schema.choice(prefix, "source", self.source, ae_sources())
        schema.choice(prefix, "latent", self.latent, LATENTS)
        check_arch(prefix, self.arch)


@dataclass
class RandomAutoencoder(AutoencoderNode):
    """``configs/autoencoder/tiny.yaml``: an untrained AutoencoderKL built from ``arch``."""

    source: str = "random"  # no weights (random initialisation)
    arch: Any = arch_field(TINY_VAE_ARCH)  # the tiny architecture


@dataclass
class HubAutoencoder(AutoencoderNode):
    """``configs/autoencoder/sd_vae.yaml``: a diffusers AutoencoderKL from the local HF cache."""

    source: str = "hub"  # the Hugging Face hub (local cache)
    repo: str | None = "stabilityai/sd-vae-ft-mse"  # Stable Diffusion's fine-tuned VAE


@dataclass
class RunAutoencoder(AutoencoderNode):
    """``configs/autoencoder/run.yaml``: a VAE-stage run of one's own (``autoencoder.path``)."""

    source: str = "run"  # a run directory of the VAE stage (model=vae)


AUTOENCODER_SCHEMAS = {
    "random": RandomAutoencoder,
    "hub": HubAutoencoder,
    "local-dir": AutoencoderNode,
    "run": RunAutoencoder,
}
AUTOENCODER_FILES = {"tiny": RandomAutoencoder, "sd_vae": HubAutoencoder, "run": RunAutoencoder}


# ============================================================================ reading


def _plain(node) -> dict:
    if node is None:
        return {}
    if isinstance(node, DictConfig):
        return OmegaConf.to_container(node, resolve=True)
    if isinstance(node, dict):
        return dict(node)
    raise bad_value("node", node, "a mapping")


def read_whole_arch(cls, node, prefix: str):
    """``schema.read(cls, node, prefix)`` with ``arch`` taken as a whole (not merged key by key
    onto the default architecture), so a given ``arch`` keeps exactly its keys."""
    d = _plain(node)
    if not isinstance(d, dict):
        raise bad_value(prefix, node, "a mapping")
    has_arch = "arch" in d
    arch = d.pop("arch", None)
    obj = schema.read(cls, d, prefix)
    if has_arch:
        if arch is not None and not hasattr(obj, "arch"):
            schema.read(cls, {"arch": arch}, prefix)  # the one-line unknown-key error
        if hasattr(obj, "arch"):
            obj.arch = copy.deepcopy(arch)
            obj.check(prefix)
    return obj


def _plugin_schemas(kind: str) -> dict:
    from ldm_vs_gan import plugins

    return {n: plugins.find(kind, n).schema for n in plugins.names(kind)}


def clip_sources() -> tuple[str, ...]:
    """Every ``clip.source``: the built-in ones and the plug-ins'."""
    return (*CLIP_SOURCES, *_plugin_schemas("clip"))


def ae_sources() -> tuple[str, ...]:
    """Every ``autoencoder.source``: the built-in ones and the plug-ins'."""
    return (*AE_SOURCES, *_plugin_schemas("autoencoder"))


def _by_source(node, prefix: str, schemas: dict, sources) -> Any:
    d = _plain(node)
    src = d.get("source")
    if src not in schemas:
        raise bad_value(f"{prefix}.source", src, sources)
    return read_whole_arch(schemas[src], d, prefix)


def read_clip(node, prefix: str = "clip"):
    """The typed ``clip`` node (the schema of its ``source``)."""
    return _by_source(node, prefix, {**CLIP_SCHEMAS, **_plugin_schemas("clip")}, clip_sources())


def read_autoencoder(node, prefix: str = "autoencoder"):
    """The typed ``autoencoder`` node (the schema of its ``source``)."""
    return _by_source(node, prefix, {**AUTOENCODER_SCHEMAS, **_plugin_schemas("autoencoder")}, ae_sources())
