"""The frozen CLIP (open_clip): text tokens for the LDM, sentence embedding and ViT access for GALIP.

One object serves both families (equal conditions include the same frozen text encoder).
It wraps an ``open_clip.CLIP`` (the built-in ViT text/image towers, batch-first blocks in
open_clip 3.3.0) and exposes exactly what docs/CONTRACTS.md pins:

- ``encode_text(captions) -> TextFeatures(tokens (B,L,D), pooled (B,E), mask (B,L))``: tokens are
  the text transformer's outputs after ``ln_final`` (what SD's UNet cross-attends to); pooled is
  the EOT token after ``ln_final`` times ``text_projection``, not normalised (GALIP's sentence
  embedding, as in the official GALIP code); mask is True up to and including EOT (CLIP's text transformer is
  causal, so later positions never influence earlier ones, but they carry no caption content).
  ``token_layer`` (config key ``clip.token_layer``) picks another layer's tokens (SD 2 uses the
  penultimate, -2); pooled stays the last layer's.
- ``encode_image``, ``preprocess`` (from [-1,1]: map to [0,1] once, antialiased resize, mean/std;
  GALIP's official code maps to [0,1] twice, so its CLIP sees [0.5,1]: a bug we do not copy).
- ``image_block_tokens`` / ``vit_prompted_forward``: the ViT internals GALIP's Mate-D and Mate-G
  need (1-based block indices, patch tokens without CLS or LayerNorm).

Frozen: every parameter has ``requires_grad=False`` and the module stays in eval mode even when a
parent calls ``.train()`` (``train`` is overridden); gradients still flow to the inputs.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

# CLIP's normalisation constants (OpenAI; open_clip uses the same for its LAION models).
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


class TextFeatures(NamedTuple):
    tokens: torch.Tensor  # (B, L, D) after ln_final
    pooled: torch.Tensor  # (B, E) EOT token @ text_projection, not normalised
    mask: torch.Tensor  # (B, L) bool, True for SOT..EOT inclusive


class FrozenCLIP(nn.Module):
    """A frozen open_clip ``CLIP`` with a tokenizer.

    model: an ``open_clip.CLIP`` (ViT image tower, built-in text tower).
    tokenizer: callable ``list[str] -> LongTensor (B, context_length)`` (open_clip's BPE).
    info: provenance (source, name, weights hash, ...), recorded by callers with their numbers.
    """

    def __init__(
        self, model: nn.Module, tokenizer, *, info: dict | None = None, mean=CLIP_MEAN, std=CLIP_STD
    ):
        super().__init__()
        from open_clip.transformer import VisionTransformer

        if not isinstance(getattr(model, "visual", None), VisionTransformer):
            raise TypeError(
                "FrozenCLIP needs an open_clip model with a ViT image tower "
                f"(got {type(getattr(model, 'visual', None)).__name__})"
            )
        self.model = model
        self.tokenizer = tokenizer
        self.info = dict(info or {})
        # Which text layer ``encode_text`` returns as tokens by default (clip.token_layer).
        self.token_layer = -1
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1), persistent=False)
        self.requires_grad_(False)
        self.train(False)

    # --- frozen -----------------------------------------------------------------------------
    def train(self, mode: bool = True) -> FrozenCLIP:
        """Always eval: a parent's ``.train()`` must not switch on dropout/patch-dropout here."""
        return super().train(False)

    # --- sizes ------------------------------------------------------------------------------
    @property
    def visual(self) -> nn.Module:
        return self.model.visual

    @property
    def token_dim(self) -> int:
        """D: width of the text transformer (the LDM's cross-attention context dim)."""
        return int(self.model.ln_final.weight.shape[0])

    @property
    def embed_dim(self) -> int:
        """E: joint embedding size (pooled text and image embeddings)."""
        return int(self.model.visual.output_dim)

    @property
    def context_length(self) -> int:
        return int(getattr(self.tokenizer, "context_length", self.model.context_length))

    @property
    def vit_width(self) -> int:
        return int(self.model.visual.transformer.width)

    @property
    def vit_layers(self) -> int:
        return len(self.model.visual.transformer.resblocks)

    @property
    def vit_grid(self) -> tuple[int, int]:
        gh, gw = self.model.visual.grid_size
        return int(gh), int(gw)

    @property
    def image_size(self) -> int:
        return int(self.model.visual.image_size[0])

    @property
    def logit_scale(self) -> torch.Tensor:
        return self.model.logit_scale.exp()

    def _device(self) -> torch.device:
        return self.model.ln_final.weight.device

    # --- text -------------------------------------------------------------------------------
    def tokenize(self, captions: list[str]) -> torch.Tensor:
        """(B, L) int64 token ids (SOT ... EOT, zero padded; truncated captions keep EOT last)."""
        return self.tokenizer(list(captions)).to(self._device())

    @property
    def text_layers(self) -> int:
        return len(self.model.transformer.resblocks)

    def check_token_layer(self, token_layer) -> int:
        """``token_layer`` as a layer index in 0..n (n = text blocks), or ValueError."""
        n = self.text_layers
        ok = isinstance(token_layer, int) and not isinstance(token_layer, bool)
        if not ok or not -(n + 1) <= token_layer <= n:
            raise ValueError(
                f"token_layer={token_layer!r}: this text tower has layers 0..{n} "
                f"(0 = token embeddings, {n} = last block; -1 = last, -2 = penultimate)"
            )
        return token_layer % (n + 1)

    def encode_text(self, captions: list[str], token_layer: int | None = None) -> TextFeatures:
        """``token_layer`` (default: ``self.token_layer``, set from ``clip.token_layer``) picks
        which layer's outputs are returned as ``tokens``, counting the token embeddings
        (+ positions) as layer 0 and block k's output as layer k; negative values count from the
        end, Python-style: -1 = the last block (SD v1), -2 = the penultimate block (SD 2.x and
        SDXL, Podell et al. 2023 s2.1). Each goes through ``ln_final``, as SD 2's
        ``FrozenOpenCLIPEmbedder`` does. ``pooled`` is always the last block's EOT."""
        m = self.model
        n = self.text_layers
        want = self.check_token_layer(self.token_layer if token_layer is None else token_layer)
        text = self.tokenize(captions)  # (B, L)
        L = text.shape[1]
        x = m.token_embedding(text) + m.positional_embedding[:L]  # (B, L, D)
        mask_attn = m.attn_mask[:L, :L] if m.attn_mask is not None else None
        seq_first = not getattr(m.transformer, "batch_first", True)
        x = x.transpose(0, 1) if seq_first else x
        picked = x
        for k, block in enumerate(m.transformer.resblocks, start=1):
            x = block(x, attn_mask=mask_attn)
            if k == want:
                picked = x
        if seq_first:
            x, picked = x.transpose(0, 1), picked.transpose(0, 1)
        final = m.ln_final(x)  # (B, L, D)
        tokens = final if want == n else m.ln_final(picked)  # (B, L, D)
        # EOT has the largest id in open_clip's BPE vocabulary: its position is the argmax.
        eot = text.argmax(dim=-1)  # (B,)
        pooled = final[torch.arange(final.shape[0], device=final.device), eot]  # (B, D)
        proj = m.text_projection
        if proj is not None:
            pooled = proj(pooled) if isinstance(proj, nn.Linear) else pooled @ proj  # (B, E)
        mask = torch.arange(L, device=text.device)[None, :] <= eot[:, None]  # (B, L)
        return TextFeatures(tokens, pooled, mask)

    # --- image ------------------------------------------------------------------------------
    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        """[-1,1] (B,3,H,W) -> CLIP input (B,3,S,S): to [0,1] once, antialiased bicubic resize to
        the tower's size (only if needed), then CLIP mean/std."""
        x = (images + 1.0) * 0.5
        size = tuple(int(s) for s in self.model.visual.image_size)
        if tuple(x.shape[-2:]) != size:
            x = F.interpolate(x, size=size, mode="bicubic", align_corners=False, antialias=True)
        return (x - self.mean.to(x.dtype)) / self.std.to(x.dtype)

    def encode_image(self, images: torch.Tensor) -> torch.Tensor:
        """(B, E) image embedding (ln_post(CLS) @ proj), not normalised."""
        return self.model.encode_image(self.preprocess(images))

    def _embed_patches(self, x: torch.Tensor) -> torch.Tensor:
        """Patch tokens (B, N, C) -> CLS + positional embedding + ln_pre -> (B, 1+N, C)."""
        v = self.model.visual
        cls = v.class_embedding.to(x.dtype).view(1, 1, -1).expand(x.shape[0], 1, -1)
        x = torch.cat([cls, x], dim=1) + v.positional_embedding.to(x.dtype)
        return v.ln_pre(x)

    def _run_block(self, blk: nn.Module, x: torch.Tensor) -> torch.Tensor:
        """One ViT block on batch-first tokens (B, T, C), whatever the stack's layout."""
        if self.model.visual.transformer.batch_first:
            return blk(x)
        return blk(x.transpose(0, 1)).transpose(0, 1)

    def _check_blocks(self, blocks, what: str) -> None:
        n = self.vit_layers
        bad = [b for b in blocks if not (isinstance(b, int) and 1 <= b <= n)]
        if bad:
            raise ValueError(f"{what}: block indices are 1-based in 1..{n}; got {bad}")

    def image_block_tokens(self, images: torch.Tensor, blocks: list[int]) -> list[torch.Tensor]:
        """Patch tokens after each 1-based block in ``blocks``: list of (B, C, gh, gw), in the
        order given; no CLS, no LayerNorm (GALIP's Mate-D taps blocks 2, 5, 9 of ViT-B/32)."""
        return self._vit_pass(images, list(blocks), embedding=False)[0]

    def image_taps_and_embedding(self, images: torch.Tensor, blocks: list[int]):
        """``(image_block_tokens(images, blocks), encode_image(images))`` from ONE pass through the
        tower (GALIP's generator loss needs both for every fake image; the official code also
        makes one pass)."""
        return self._vit_pass(images, list(blocks), embedding=True)

    def _vit_pass(self, images, blocks, embedding: bool):
        self._check_blocks(blocks, "image_block_tokens")
        v = self.model.visual
        x = v.conv1(self.preprocess(images))  # (B, C, gh, gw)
        B, C, gh, gw = x.shape
        x = self._embed_patches(x.flatten(2).transpose(1, 2))  # (B, 1+N, C)
        wanted, out = set(blocks), {}
        last = self.vit_layers if embedding else max(blocks, default=0)
        for i, blk in enumerate(v.transformer.resblocks, start=1):
            if i > last:
                break
            x = self._run_block(blk, x)
            if i in wanted:
                out[i] = x[:, 1:].transpose(1, 2).reshape(B, C, gh, gw)
        emb = None
        if embedding:  # open_clip's own pooling + projection on the final tokens
            emb, _ = v._pool(x)
            if v.proj is not None:
                emb = emb @ v.proj  # (B, E)
        return [out[b] for b in blocks], emb

    def vit_prompted_forward(self, tokens: torch.Tensor, prompts: dict[int, torch.Tensor]) -> torch.Tensor:
        """GALIP's Mate-G pass through the frozen ViT (as the official GALIP code runs it).

        tokens: (B, C, gh, gw) patch tokens in place of ``conv1``'s output. Adds CLS, positional
        embedding and ``ln_pre``, runs all blocks; before 1-based block i appends ``prompts[i]``
        (B, C) as one extra token (no positional embedding) and removes it after the block.
        Returns the last block's patch tokens (B, C, gh, gw): no ``ln_post``, no projection.
        """
        self._check_blocks(list(prompts), "vit_prompted_forward prompts")
        B, C, gh, gw = tokens.shape
        if (gh, gw) != self.vit_grid or C != self.vit_width:
            raise ValueError(
                f"vit_prompted_forward: tokens must be (B, {self.vit_width}, "
                f"{self.vit_grid[0]}, {self.vit_grid[1]}); got {tuple(tokens.shape)}"
            )
        x = self._embed_patches(tokens.flatten(2).transpose(1, 2))  # (B, 1+N, C)
        for i, blk in enumerate(self.model.visual.transformer.resblocks, start=1):
            p = prompts.get(i)
            if p is None:
                x = self._run_block(blk, x)
            else:
                x = self._run_block(blk, torch.cat([x, p.to(x.dtype)[:, None, :]], dim=1))[:, :-1]
        return x[:, 1:].transpose(1, 2).reshape(B, C, gh, gw)

    def extra_repr(self) -> str:
        return (
            f"token_dim={self.token_dim}, embed_dim={self.embed_dim}, vit_width={self.vit_width}, "
            f"vit_layers={self.vit_layers}, vit_grid={self.vit_grid}, image_size={self.image_size}, "
            f"source={self.info.get('source')!r}"
        )


class ConvStem(nn.Sequential):
    """A convolutional stem in place of the ViT's patchify ``conv1`` (Xiao et al., "Early
    Convolutions Help Transformers See Better", NeurIPS 2021): log2(patch) stride-2 3x3 convs with
    GELU, then a 1x1 conv to the ViT width; (B,3,H,W) -> (B,width,H/patch,W/patch), the same
    contract as ``conv1``, so every ViT pass (open_clip's own, GALIP's) is unchanged. ``channels``
    lists the convs' widths; a list shorter than log2(patch) repeats its last entry.

    Why on the toy world: the difference between a small square and a small circle is a few corner
    pixels inside one 4x4 patch, which a single linear patch embedding learns slowly (a patchify
    toy CLIP confused them in nearly all of its held-out retrieval errors).
    """

    def __init__(self, width: int, patch: int, channels: list[int]):
        # One stride-2 conv per factor 2 of the patch; a shorter list repeats its last entry, so one
        # config serves 32 px (patch 4: two convs) and 64 px (patch 8: three).
        n = patch.bit_length() - 1
        if patch < 2 or patch & (patch - 1) or not 1 <= len(channels) <= n:
            from ldm_vs_gan.errors import bad_value

            raise bad_value(
                "clip.arch.vision_cfg.conv_stem",
                list(channels),
                f"1..log2(patch_size)={n} channel counts (patch_size={patch}, a power of two)",
            )
        channels = list(channels) + [channels[-1]] * (n - len(channels))
        layers, c = [], 3
        for co in channels:
            layers += [nn.Conv2d(c, int(co), 3, stride=2, padding=1), nn.GELU()]
            c = int(co)
        super().__init__(*layers, nn.Conv2d(c, width, 1))


def build_open_clip(arch: dict, *, quick_gelu: bool = False) -> nn.Module:
    """An ``open_clip.CLIP`` from an architecture dict ``{embed_dim, vision_cfg, text_cfg}`` (the
    format of open_clip's model_configs JSON), random weights. Our one extra key,
    ``vision_cfg.conv_stem`` (a list of channels, or null), replaces the patchify conv by a
    ``ConvStem``."""
    import open_clip

    arch = dict(arch)
    vision = dict(arch["vision_cfg"])
    stem = vision.pop("conv_stem", None)
    model = open_clip.CLIP(
        embed_dim=int(arch["embed_dim"]),
        vision_cfg=vision,
        text_cfg=dict(arch["text_cfg"]),
        quick_gelu=bool(arch.get("quick_gelu", quick_gelu)),
    )
    if stem:
        model.visual.conv1 = ConvStem(int(vision["width"]), int(vision["patch_size"]), list(stem))
    return model


def bpe_tokenizer(context_length: int):
    """open_clip's shipped BPE tokenizer (vocabulary inside the package, works offline)."""
    from open_clip.tokenizer import SimpleTokenizer

    return SimpleTokenizer(context_length=int(context_length))
