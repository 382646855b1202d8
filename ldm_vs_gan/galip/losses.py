"""GALIP's objectives (Tao et al., CVPR 2023, sec. 3.3; DF-GAN, Tao et al., CVPR 2022, eq. 3-5).

Discriminator (hinge, with the mismatched-text term of DF-GAN):
    L_D = E[relu(1 - D(x, e))] + 1/2 (E[relu(1 + D(G(z, e), e))] + E[relu(1 + D(x, e_mis))])
          + k * E[ ||(grad_F D(F, e), grad_e D(F, e))||_2 ^ p ]            (MA-GP, k=2, p=6)
where F = CLIP features of the real image x and e_mis = e rolled by one within the batch.
Generator:
    L_G = -E[D(G(z, e), e)] - w * E[cos(CLIP_img(G(z, e)), e)]          (w = 4)
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def mismatched(x: torch.Tensor) -> torch.Tensor:
    """Rows rolled by one (row i gets row i+1, the last gets the first): a derangement of the batch
    for B >= 2, so every image is paired with another sample's caption (official GALIP)."""
    if x.shape[0] < 2:
        raise ValueError("the mismatched-caption term needs a per-rank batch of at least 2")
    return torch.cat([x[1:], x[:1]], dim=0)


def hinge_real(logits: torch.Tensor) -> torch.Tensor:
    """E[relu(1 - D)]: push real (matching) pairs above +1."""
    return F.relu(1.0 - logits.float()).mean()


def hinge_fake(logits: torch.Tensor) -> torch.Tensor:
    """E[relu(1 + D)]: push fake or mismatched pairs below -1."""
    return F.relu(1.0 + logits.float()).mean()


# Largest scale inside MA-GP's autograd.grad whose gradient at fp16 logits stays finite.
MAX_GP_SCALE = 2.0**15


def ma_gp(
    logits: torch.Tensor,
    inputs: tuple[torch.Tensor, ...] | list[torch.Tensor],
    *,
    k: float = 2.0,
    p: float = 6.0,
    grad_scale: float = 1.0,
) -> torch.Tensor:
    """Matching-aware zero-centred gradient penalty (DF-GAN eq. 4): k * mean_i ||g_i||_2 ^ p where
    g_i concatenates, for sample i, the gradients of sum(logits) with respect to every tensor in
    ``inputs`` (GALIP: the real image's CLIP features and the sentence embedding, jointly).

    ``grad_scale`` is the fp16 GradScaler scale: the logits are multiplied by it before
    ``autograd.grad`` (so small fp16 gradients do not underflow) and the gradients divided by it
    after (PyTorch AMP recipe "gradient penalty"); 1.0 without a scaler. Capped at
    :data:`MAX_GP_SCALE`: d sum(logits) / d logit is the scale itself, and at the GradScaler's
    initial 2**16 it overflows fp16 logits (max 65504), making the first penalty NaN. The graph is
    kept (create_graph) so the penalty trains the discriminator.
    """
    scale = min(float(grad_scale), MAX_GP_SCALE)
    grads = torch.autograd.grad(
        outputs=logits.sum() * scale,
        inputs=list(inputs),
        create_graph=True,
    )
    inv = 1.0 / scale
    flat = torch.cat([(g.float() * inv).flatten(1) for g in grads], dim=1)  # (B, sum of dims)
    # ||g||^p computed as (||g||^2)^(p/2): same value, but no sqrt whose derivative is infinite
    # at a zero gradient (a fresh Mate-D's gates are 0, so its gradients can be exactly 0).
    return k * flat.pow(2).sum(1).pow(p / 2).mean()


def clip_similarity(image_embedding: torch.Tensor, sentence: torch.Tensor) -> torch.Tensor:
    """Mean cosine similarity between CLIP image embeddings (B, E) and sentence embeddings (B, E)."""
    return F.cosine_similarity(image_embedding.float(), sentence.float(), dim=1).mean()


def mode_seeking(images: torch.Tensor, z: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """Mode-seeking term of MSGAN (Mao et al., CVPR 2019, eq. 3), as their code computes it: rows
    i and i + B/2 share a condition, lz = mean|G(c, z1) - G(c, z2)| / mean|z1 - z2| over the
    pairs, and the generator minimises 1 / (lz + eps). It rewards images that move when z moves,
    i.e. it penalises the collapse of all z onto one image per prompt. Not in official GALIP.
    The images are clamped to [-1, 1] first (what sampling shows): GALIP's generator has no tanh,
    and on raw outputs the term is won by pushing pixels far outside the image range (measured:
    values in [-8.8, 4.2] after 4k toy images); MSGAN's generators end in tanh.

    images (B, 3, H, W), z (B, z_dim), B >= 2 (an odd last row is left out) -> scalar."""
    half = images.shape[0] // 2
    if half < 1:
        raise ValueError("the mode-seeking term needs at least one pair (batch >= 2)")
    x = images.float().clamp(-1.0, 1.0)
    d_img = (x[:half] - x[half : 2 * half]).abs().mean()
    d_z = (z[:half].float() - z[half : 2 * half].float()).abs().mean()
    return 1.0 / (d_img / d_z + eps)
