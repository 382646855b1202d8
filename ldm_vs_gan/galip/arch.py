"""Default GALIP architecture choices that scale with the CLIP ViT and the target resolution.

The official code hard-codes ViT-B/32 at 224 px: a 12-block ViT, a 7x7 patch grid, Mate-D taps
after blocks 2, 5, 9 and Mate-G prompts before blocks 2..9 (all 1-based), image-generator sizes
8, 16, 32, 64, 128, 224 with channels 512 -> 512, 512, 512, 256, 128, 64 (Tao et al. 2023). Here
those choices are rules, so any open_clip ViT (and the toy world's small CLIP at 32 px) gets the
same design, and the rules reproduce the official numbers exactly at ViT-B/32 / 224 px.
"""

from __future__ import annotations

import math

from ldm_vs_gan.errors import bad_value

#: Official choices, expressed for a 12-block ViT (1-based block indices).
OFFICIAL_DEPTH = 12
OFFICIAL_TAPS = (2, 5, 9)
OFFICIAL_PROMPT_BLOCKS = tuple(range(2, 10))


def map_blocks(blocks_for_12: tuple[int, ...] | list[int], depth: int) -> list[int]:
    """Map 1-based block indices of a 12-block ViT to a ViT of ``depth`` blocks at the same
    relative depth (round(b * depth / 12), clipped to [1, depth]); duplicates collapse, order kept.
    Identity for depth 12. E.g. taps 2/5/9 -> 1/2/3 for a 4-block ViT."""
    out: list[int] = []
    for b in blocks_for_12:
        m = min(max(int(math.floor(b * depth / OFFICIAL_DEPTH + 0.5)), 1), depth)
        if m not in out:
            out.append(m)
    return out


def check_blocks(key: str, blocks, depth: int) -> list[int]:
    """Validate explicit 1-based block indices from the config (strictly increasing, in range)."""
    blocks = [int(b) for b in blocks]
    if not blocks or any(b < 1 or b > depth for b in blocks) or sorted(set(blocks)) != blocks:
        raise bad_value(key, blocks, f"strictly increasing 1-based ViT block indices in 1..{depth}")
    return blocks


def generator_sizes(grid: int, resolution: int) -> list[int]:
    """Output side of each image-generator block: from the smallest power of two >= the ViT grid,
    doubling, the last block landing exactly on ``resolution`` (official: grid 7 -> 8, 16, 32,
    64, 128, then 224 instead of 256). Grid 8 -> 32 px gives 8, 16, 32; grid 4 -> 32 px: 4..32."""
    if resolution < grid:
        raise bad_value("data.resolution", resolution, f"a resolution >= the ViT patch grid ({grid})")
    size = 1 << max(0, math.ceil(math.log2(grid)))
    sizes = [size]
    while sizes[-1] * 2 < resolution * 1.5 and sizes[-1] < resolution:
        sizes.append(sizes[-1] * 2)
    sizes[-1] = resolution
    return sizes


def generator_channels(n_blocks: int, base: int, max_mult: int) -> list[int]:
    """DF-GAN's channel schedule: block i (of n) outputs base * min(2**(n-1-i), max_mult), so the
    last block has ``base`` channels and the deepest ones are capped at ``base * max_mult``.
    Official (n=6, base 64, max 8): 512, 512, 512, 256, 128, 64."""
    return [base * min(2 ** (n_blocks - 1 - i), max_mult) for i in range(n_blocks)]


def assessor_kernels(grid: int) -> tuple[int, int]:
    """Kernel sizes of the quality assessor's two unpadded convs, so that a grid x grid map ends
    at 1x1: k1 = grid // 2 + 1, k2 = grid - k1 + 1 (official 7x7: 4 then 4)."""
    k1 = grid // 2 + 1
    return k1, grid - k1 + 1
