"""Differentiable translation augmentation for GALIP's CLIP-side inputs (DiffAugment, Zhao et
al., NeurIPS 2020, "translation" policy), opt-in (``model.augment.translation``; 0 = off, as
official GALIP).

Why: Mate-D and the CLIP-similarity term both judge an image through one frozen CLIP. A small
CLIP (the toy world's) is easy to satisfy with pixel patterns that are not objects (adversarial
textures; measured: colour right, shape at chance). Showing D and the CLIP term the real and fake
images under the same random shifts (gradients pass through the shift, as DiffAugment requires)
makes a pattern pay off only if it survives the shift. Only translation is used: colour jitter
would change the captioned colour, cutout can erase a small object; a shift keeps the caption
true (relations are relative positions).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def translate(x: torch.Tensor, ratio: float) -> torch.Tensor:
    """Shift each image of x (B, C, H, W) by its own random integer offset in
    [-round(ratio * H), round(ratio * H)] rows and likewise columns -> (B, C, H, W).

    Uncovered pixels copy the nearest border pixel (DiffAugment pads with zeros, i.e. mid-grey in
    [-1, 1], which the toy world's dark background is not). Differentiable in x."""
    if ratio <= 0:
        return x
    b, c, h, w = x.shape
    sh, sw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    if sh == 0 and sw == 0:
        return x
    dev = x.device
    xp = F.pad(x, (sw, sw, sh, sh), mode="replicate")  # (B, C, H + 2sh, W + 2sw)
    dy = torch.randint(-sh, sh + 1, (b, 1), device=dev)
    dx = torch.randint(-sw, sw + 1, (b, 1), device=dev)
    iy = torch.arange(h, device=dev)[None] + sh - dy  # (B, H): source row of each output row
    ix = torch.arange(w, device=dev)[None] + sw - dx  # (B, W)
    bi = torch.arange(b, device=dev)[:, None, None, None]
    ci = torch.arange(c, device=dev)[None, :, None, None]
    return xp[bi, ci, iy[:, None, :, None], ix[:, None, None, :]]
