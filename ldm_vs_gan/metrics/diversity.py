"""Diversity: mode collapse as a number.

For K prompts with M seeds each: the mean pairwise cosine distance between the features of the M
images of one prompt, averaged over prompts. The same figure on M real images of the same prompt
(toy world: same objects, colours, sizes and relation; positions free) is the reference: a ratio
generated/real near 1 is healthy, near 0 is collapse (the thesis' GALIP drew near-identical images
per prompt and only noticed it by eye; README of experiments/toy_ldm_vs_galip).

Cosine rather than Euclidean distance: it does not depend on the feature scale of the extractor,
so the figure reads the same for the toy judge, CLIP and Inception.
"""

from __future__ import annotations

import json

import numpy as np


def mean_pairwise_cosine_distance(features) -> float:
    """Mean of 1 - cos(f_i, f_j) over pairs i < j of one group (M, D); NaN for M < 2."""
    f = np.asarray(features, dtype=np.float64)
    if len(f) < 2:
        return float("nan")
    f = f / np.maximum(np.linalg.norm(f, axis=1, keepdims=True), 1e-12)
    sim = f @ f.T
    iu = np.triu_indices(len(f), k=1)
    return float(np.mean(1.0 - sim[iu]))


def group_diversity(groups: list) -> float:
    """Mean over groups of :func:`mean_pairwise_cosine_distance` (groups with < 2 members ignored)."""
    vals = [mean_pairwise_cosine_distance(g) for g in groups if len(g) >= 2]
    return float(np.mean(vals)) if vals else float("nan")


def prompt_key(caption: str, attributes: dict | None) -> str:
    """What makes two samples 'the same prompt': the toy world's attributes without positions
    (captions paraphrase the same scene), else the exact caption."""
    if attributes:
        objs = [{k: v for k, v in o.items() if k not in ("x", "y")} for o in attributes.get("objects", [])]
        return json.dumps({"objects": objs, "relation": attributes.get("relation")}, sort_keys=True)
    return caption


def pick_prompt_groups(captions: list[str], attributes: list, k: int, m: int) -> list[list[int]]:
    """Up to ``k`` groups of ``m`` indices sharing a prompt key, most frequent keys first (ties in
    order of first appearance, so the choice is deterministic). Fewer when the pool lacks repeats."""
    groups: dict[str, list[int]] = {}
    for i, c in enumerate(captions):
        a = attributes[i] if attributes and i < len(attributes) else None
        groups.setdefault(prompt_key(c, a), []).append(i)
    full = [idx for idx in groups.values() if len(idx) >= m]
    full.sort(key=lambda idx: (-len(idx), idx[0]))
    return [idx[:m] for idx in full[:k]]
