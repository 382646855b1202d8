"""One pass through the frozen CLIP ViT for the generator loss: Mate-D's tapped patch tokens and
the image embedding of the CLIP-similarity term together.

The contract (docs/CONTRACTS.md) offers them as two calls, ``image_block_tokens`` and
``encode_image``, i.e. two ViT passes (forward and backward) over every fake image; on the toy
CLIP that is ~1.7x the ViT work of one pass. The official code makes one pass (its CLIP4trn
returns both). This helper runs open_clip's own VisionTransformer pieces (``_embeds``,
``transformer.resblocks``, ``_pool``, ``proj``) once and falls back to the two contract calls for
towers it does not recognise. tests/test_galip_model.py checks it equals the two calls.
"""

from __future__ import annotations

import torch


def taps_and_embedding(
    clip, images: torch.Tensor, blocks: list[int]
) -> tuple[list[torch.Tensor], torch.Tensor]:
    """images [-1,1] (B,3,H,W) -> ([(B, C, gh, gw) after each 1-based block], (B, E) embedding)."""
    v = clip.visual
    simple = (
        hasattr(v, "_embeds")
        and hasattr(v, "_pool")
        and getattr(v, "attn_pool", None) is None
        and getattr(v, "pool_type", "tok") == "tok"
        and getattr(v.transformer, "batch_first", False)
    )
    if not simple:
        return clip.image_block_tokens(images, blocks), clip.encode_image(images)
    x = v._embeds(clip.preprocess(images))  # (B, 1+N, C): CLS, positional embedding, ln_pre
    b, c = x.shape[0], x.shape[-1]
    gh, gw = clip.vit_grid
    wanted, taps = set(blocks), {}
    for i, blk in enumerate(v.transformer.resblocks, start=1):
        x = blk(x)
        if i in wanted:
            taps[i] = x[:, 1:].transpose(1, 2).reshape(b, c, gh, gw)  # no CLS, no LayerNorm
    pooled, _ = v._pool(x)  # ln_post on CLS
    if v.proj is not None:
        pooled = pooled @ v.proj  # (B, E)
    return [taps[i] for i in blocks], pooled
