"""CLIP score with an open_clip-backed model (torchmetrics' CLIPScore would need ``transformers``
and hub weights).

CLIPScore (Hessel et al. 2021) as torchmetrics defines it: 100 * max(cos(E_img(x), E_txt(c)), 0),
averaged over (image, caption) pairs. The scoring CLIP is any ``components.build_clip`` model,
chosen with ``--clip-score-clip`` and recorded. A CLIP score measured with the very CLIP a GAN was
trained against (GALIP's generator loss maximises that cosine) flatters the GAN: the
result says so (``same_clip_as_training``) and the report repeats it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


@torch.no_grad()
def clip_score(clip, images_uint8: torch.Tensor, captions: list[str], batch_size: int = 128) -> float:
    """Mean CLIP score (0..100) of images (N, 3, H, W) uint8 against their captions."""
    if len(images_uint8) != len(captions):
        raise ValueError(f"{len(images_uint8)} images but {len(captions)} captions")
    scores = []
    for i in range(0, len(captions), batch_size):
        x = images_uint8[i : i + batch_size].float() / 127.5 - 1.0  # the components take [-1, 1]
        img = F.normalize(clip.encode_image(x).float(), dim=-1)
        txt = F.normalize(clip.encode_text(captions[i : i + batch_size]).pooled.float(), dim=-1)
        scores.append(100.0 * (img * txt).sum(-1).clamp(min=0))
    return float(torch.cat(scores).mean())
