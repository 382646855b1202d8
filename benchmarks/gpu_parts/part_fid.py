"""Part 5: FID and KID on the device through the project's metric code (metrics/features.py,
metrics/fid.py) with an Inception file made here: torch-fidelity's Inception-v3 with random
weights (the architecture the standard weights file holds; the real file cannot be downloaded
on the GPU machine). Times feature extraction (uint8 images on the device -> 2048-d pool
features, resize to 299 included) and the FID/KID arithmetic, and checks FID(real, real) ~ 0.
The dry run uses 24 images per side (KID needs 20) and the 64-d tap.
"""

from __future__ import annotations

import time
from unittest import mock

import torch

from gpu_parts.timing import seconds


def write_random_inception(path) -> None:
    """torch-fidelity's Inception built without loading anything (random init), saved as the state
    dict the standard weights file holds (tests/test_metrics_inception.py does the same)."""
    import torch_fidelity.feature_extractor_inceptionv3 as tf_inc

    with (
        mock.patch.object(tf_inc.torch, "load", lambda *a, **k: {}),
        mock.patch.object(tf_inc.FeatureExtractorInceptionV3, "load_state_dict", lambda self, sd, **k: None),
    ):
        torch.manual_seed(0)
        net = tf_inc.FeatureExtractorInceptionV3(
            "inception-v3-compat", ["2048"], feature_extractor_weights_path="x"
        )
    torch.save(net.state_dict(), path)


def run(ctx, rec) -> None:
    from ldm_vs_gan.metrics.features import INCEPTION_FILE, InceptionFeatures, extract
    from ldm_vs_gan.metrics.fid import fid_from_features, kid_from_features

    device = torch.device(ctx.device)
    n, side, output = (24, 32, "64") if ctx.dry_run else (4096, 64, "2048")
    path = ctx.work / INCEPTION_FILE
    write_random_inception(path)
    ext = InceptionFeatures(path, output=output).to(device)
    g = torch.Generator().manual_seed(0)
    real = torch.randint(0, 256, (n, 3, side, side), dtype=torch.uint8, generator=g).to(device)
    fake = torch.randint(0, 160, (n, 3, side, side), dtype=torch.uint8, generator=g).to(device)
    extract(ext, real[:8], batch_size=8)  # warm-up (kernels, allocator)
    rec.update({"n_per_side": n, "image_side": side, "features": ext.num_features})
    feats = {}

    def features():
        feats["real"] = extract(ext, real, batch_size=256)
        feats["fake"] = extract(ext, fake, batch_size=256)

    s = seconds(features, device)
    rec["extract_img_per_s"] = round(2 * n / s, 1)
    t0 = time.perf_counter()
    rec["fid"] = round(fid_from_features(feats["real"], feats["fake"]), 4)
    rec["fid_seconds"] = round(time.perf_counter() - t0, 2)
    rec["fid_real_vs_real"] = round(fid_from_features(feats["real"], feats["real"]), 6)
    t0 = time.perf_counter()
    mean, std, size = kid_from_features(feats["real"], feats["fake"])
    rec.update({"kid_mean": round(mean, 6), "kid_std": round(std, 6), "kid_subset_size": size})
    rec["kid_seconds"] = round(time.perf_counter() - t0, 2)
    if not (rec["fid"] > 0 and abs(rec["fid_real_vs_real"]) < 1e-2 and mean > 0):
        raise AssertionError(f"implausible FID/KID: {dict(rec)}")
