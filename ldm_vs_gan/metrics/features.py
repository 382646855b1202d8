"""Pluggable feature extractors for FID/KID/IS/diversity.

Every extractor is an ``nn.Module`` that maps **uint8** images (B, 3, H, W) to float features
(B, D) and carries what the provenance of a number needs: ``name``, ``sha256`` (of its weights),
``resize`` (how images reach its input size) and ``num_features`` (torchmetrics reads it).

- ``inception``: the standard FID Inception (TF 2015-12-05 weights, torch-fidelity's port, 2048-d
  pool features, ``logits_unbiased`` for IS) from a **local file only**: ``--inception-weights`` or
  torch-fidelity's hub cache. Absent file -> one :class:`MissingWeightsError` naming the file and
  where to put it. Never a silent fallback to another extractor (its numbers would not compare).
- ``clip``: image embeddings of a frozen CLIP (``components.build_clip``).
- a plug-in's (``ldm_vs_gan.plugins`` kind ``features``), e.g. ``toy``: the toy judge's
  penultimate features (the toy world's Inception).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ldm_vs_gan.errors import MissingWeightsError, bad_value
from ldm_vs_gan.paths import sha256_file

EXTRACTORS = ("inception", "clip")  # built in; plug-ins add theirs (toy)
INCEPTION_FILE = "weights-inception-2015-12-05-6726825d.pth"
INCEPTION_URL = "https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/" + INCEPTION_FILE
# Match torch-fidelity (and so the published LDM FIDs): TF1-style bilinear resize to 299, no
# antialiasing. torchmetrics >= 1.8 defaults to antialias=True, which shifts FID.
INCEPTION_RESIZE = "torch-fidelity TF1-compatible bilinear to 299x299 (torchmetrics antialias=False)"

# clean-fid (Parmar et al. 2022): PIL bicubic per channel in float; we round to uint8 after it,
# because the Inception port takes uint8 (an error of at most half a grey level).
CLEAN_RESIZE = "clean-fid PIL bicubic to 299x299 per channel in float, rounded to uint8"
RESIZE_MODES = ("legacy", "clean")


def clean_resize(images: torch.Tensor, size: int) -> torch.Tensor:
    """uint8 (B, 3, H, W) -> uint8 (B, 3, size, size) by PIL's antialiased bicubic on float channels."""
    from PIL import Image

    out = np.empty((len(images), 3, size, size), dtype=np.float32)
    for i, img in enumerate(images.cpu().numpy().astype(np.float32)):
        for c in range(3):
            out[i, c] = np.asarray(Image.fromarray(img[c], mode="F").resize((size, size), Image.BICUBIC))
    return torch.from_numpy(out.round().clip(0, 255).astype(np.uint8))


_SHA_CACHE: dict[tuple[str, float, int], str] = {}


def file_sha256(path: str | os.PathLike) -> str:
    """SHA-256 of a weights file, memoised by (path, mtime, size): hashing 95 MB costs ~0.3 s."""
    st = os.stat(path)
    key = (str(Path(path).resolve()), st.st_mtime, st.st_size)
    if key not in _SHA_CACHE:
        _SHA_CACHE[key] = sha256_file(path)
    return _SHA_CACHE[key]


def module_sha256(module: nn.Module) -> str:
    """SHA-256 over a module's state dict (names, shapes, bytes): identifies weights held in memory."""
    h = hashlib.sha256()
    for name, t in sorted(module.state_dict().items()):
        t = t.detach().cpu().contiguous().reshape(-1)
        h.update(name.encode())
        h.update(str(tuple(t.shape)).encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def default_inception_path() -> Path:
    """Where torch-fidelity (and torchmetrics) would cache the downloaded weights."""
    return Path(torch.hub.get_dir()) / "checkpoints" / INCEPTION_FILE


def resolve_inception_weights(path: str | os.PathLike | None = None) -> Path:
    """The local Inception weights file, or one clear error saying which file to put where."""
    candidates = [Path(path).expanduser()] if path else [default_inception_path()]
    for p in candidates:
        if p.is_file():
            return p
    where = f"--inception-weights {candidates[0]}" if path else f"{candidates[0]} (torch-fidelity's cache)"
    raise MissingWeightsError(
        f"Inception weights not found at {where}: download {INCEPTION_URL} on a machine with internet, "
        f"then copy it to {default_inception_path()} or pass --inception-weights /path/to/{INCEPTION_FILE}"
    )


class FeatureExtractor(nn.Module):
    """Base: uint8 (B,3,H,W) -> float (B, D). Subclasses set the provenance attributes."""

    name: str = "?"
    sha256: str = "?"
    resize: str = "?"
    num_features: int = 0
    extra: dict

    def provenance(self) -> dict:
        out = {
            "name": self.name,
            "weights_sha256": self.sha256,
            "resize": self.resize,
            "dim": self.num_features,
        }
        out.update(getattr(self, "extra", {}) or {})
        return out

    def train(self, mode: bool = True):  # frozen: never leaves eval mode
        return super().train(False)


class InceptionFeatures(FeatureExtractor):
    """torch-fidelity's FID Inception-v3 (via torchmetrics' ``NoTrainInceptionV3``), local file only.

    ``output``: ``"2048"`` (pool3 features for FID/KID) or ``"logits_unbiased"`` (for IS).
    """

    def __init__(
        self, weights_path: str | os.PathLike | None = None, output: str = "2048", resize: str = "legacy"
    ):
        super().__init__()
        allowed = ("64", "192", "768", "2048", "logits_unbiased")
        if output not in allowed:
            raise bad_value("inception output", output, allowed)
        if resize not in RESIZE_MODES:
            raise bad_value("--resize", resize, RESIZE_MODES)
        path = resolve_inception_weights(weights_path)
        # House rule: checkpoints are data. torch-fidelity itself loads with weights_only=False, so
        # refuse any file that is not a plain tensor state dict before handing it over.
        try:
            sd = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:  # noqa: BLE001 - the message must name the file
            raise MissingWeightsError(
                f"{path} is not a loadable Inception state dict ({type(e).__name__}: {e})"
            ) from e
        if not isinstance(sd, dict) or "Conv2d_1a_3x3.conv.weight" not in sd:
            raise MissingWeightsError(
                f"{path} is not torch-fidelity's Inception state dict ({INCEPTION_FILE})"
            )
        del sd
        from torchmetrics.image.fid import NoTrainInceptionV3

        self.net = NoTrainInceptionV3(
            name="inception-v3-compat",
            features_list=[output],
            feature_extractor_weights_path=str(path),
            antialias=False,
        )
        self.net.requires_grad_(False)
        self.output = output
        self.num_features = 1008 if output == "logits_unbiased" else int(output)
        self.name = f"inception-v3-compat/{output}"
        self.sha256 = file_sha256(path)
        self.resize_mode = resize
        self.resize = INCEPTION_RESIZE if resize == "legacy" else CLEAN_RESIZE
        self.extra = {"weights_file": str(path), "resize_mode": resize}

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        assert images.dtype == torch.uint8, "feature extractors take uint8 images"
        if self.resize_mode == "clean":
            images = clean_resize(images, 299)  # the network's own resize is then the identity
        out = self.net._torch_fidelity_forward(images)[0]  # (B, D): bypasses torchmetrics' reshape only
        return out.reshape(images.shape[0], -1).float()


class ClipFeatures(FeatureExtractor):
    """Image embeddings (not normalised) of a frozen CLIP; its ``preprocess`` does the antialiased
    resize to the CLIP input size and CLIP's mean/std."""

    def __init__(self, clip: nn.Module, label: str = "clip"):
        super().__init__()
        self.clip = clip
        self.num_features = int(clip.embed_dim)
        self.name = f"clip:{label}"
        self.sha256 = module_sha256(clip)
        self.resize = f"antialiased bilinear to {getattr(clip, 'image_size', '?')} px + CLIP mean/std"
        self.extra = {}

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = images.float() / 127.5 - 1.0  # uint8 -> [-1, 1] (the components' convention)
        return self.clip.encode_image(x).float()


def build_extractor(
    kind: str,
    *,
    data_cfg=None,
    clip=None,
    clip_label: str = "clip",
    inception_weights: str | None = None,
    inception_output: str = "2048",
    resize: str = "legacy",
) -> FeatureExtractor:
    """The extractor named by ``--feature`` (``kind``: :data:`EXTRACTORS` or a plug-in's);
    ``resize`` (legacy | clean) applies to Inception, whose published numbers depend on it."""
    if kind == "inception":
        return InceptionFeatures(inception_weights, output=inception_output, resize=resize)
    if kind == "clip":
        if clip is None:
            raise bad_value("--feature", kind, "inception (no CLIP given)")
        return ClipFeatures(clip, clip_label)
    from ldm_vs_gan import plugins

    return plugins.get("features", kind, "--feature", EXTRACTORS).build(data_cfg)


@torch.no_grad()
def extract(extractor: nn.Module, images: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    """Features of uint8 ``images`` in chunks (float64 on CPU, for the covariance sums)."""
    outs = [extractor(images[i : i + batch_size]).double().cpu() for i in range(0, len(images), batch_size)]
    return torch.cat(outs) if outs else torch.zeros(0, int(extractor.num_features or 0), dtype=torch.float64)
