"""The one thing the data room hands to everyone else: a :class:`Batch`.

Images are float in [-1, 1], shape (B, 3, H, W); captions are plain strings. ``attributes``
carries the toy world's ground truth (one dict per sample, the sample's ``.json``) where the data
has it, else ``None`` entries. ``skipped`` counts samples the loader dropped since the previous
batch, by reason (``{"undecodable": 2, "empty_caption": 1}``); the training loop sums and logs them.
``extras`` holds per-sample tensors read from precomputed shards (``data.precomputed``: name ->
(B, ...) tensor, e.g. the autoencoder posterior and the caption's text features), else None; a
batch of such shards without images has ``images`` of shape (B, 3, 0, 0).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch


@dataclass
class Batch:
    images: torch.Tensor  # (B, 3, H, W) float32 in [-1, 1]; (B, 3, 0, 0) when the data has none
    captions: list[str]
    keys: list[str] = field(default_factory=list)
    attributes: list[dict | None] = field(default_factory=list)
    skipped: dict[str, int] = field(default_factory=dict)
    extras: dict[str, torch.Tensor] | None = None  # precomputed per-sample tensors, (B, ...) each

    def __len__(self) -> int:
        return len(self.captions)

    def to(self, device, non_blocking: bool = False) -> Batch:
        return Batch(
            self.images.to(device, non_blocking=non_blocking),
            self.captions,
            self.keys,
            self.attributes,
            self.skipped,
            _map(self.extras, lambda t: t.to(device, non_blocking=non_blocking)),
        )

    def split(self, n: int) -> list[Batch]:
        """``n`` micro-batches of (nearly) equal size, in order: gradient accumulation splits the
        per-rank batch, so the data order does not depend on the accumulation factor. Skip counts
        travel with the first micro-batch only."""
        size = -(-len(self) // n)
        out = []
        for i, start in enumerate(range(0, len(self), size)):
            sl = slice(start, start + size)
            out.append(
                Batch(
                    self.images[sl],
                    self.captions[sl],
                    self.keys[sl] if self.keys else [],
                    self.attributes[sl] if self.attributes else [],
                    self.skipped if i == 0 else {},
                    _map(self.extras, lambda t, sl=sl: t[sl]),
                )
            )
        return out

    @staticmethod
    def cat(batches: list[Batch]) -> Batch:
        skipped: dict[str, int] = {}
        for b in batches:
            for k, v in b.skipped.items():
                skipped[k] = skipped.get(k, 0) + v
        return Batch(
            torch.cat([b.images for b in batches]),
            [c for b in batches for c in b.captions],
            [k for b in batches for k in b.keys],
            [a for b in batches for a in b.attributes],
            skipped,
            _cat_extras([b.extras for b in batches if len(b)]),
        )


def _map(extras: dict[str, torch.Tensor] | None, fn) -> dict[str, torch.Tensor] | None:
    return None if extras is None else {k: fn(v) for k, v in extras.items()}


def _cat_extras(parts: list[dict[str, torch.Tensor] | None]) -> dict[str, torch.Tensor] | None:
    """The extras of concatenated batches: kept only when every non-empty batch has the same
    names (a mix of precomputed and decoded batches has nothing to concatenate)."""
    if not parts or any(p is None or set(p) != set(parts[0]) for p in parts):
        return None
    return {k: torch.cat([p[k] for p in parts]) for k in parts[0]}
