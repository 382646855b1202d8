"""Pluggable feature extractors for FID/KID/IS/diversity.

Every extractor is an ``nn.Module`` that maps **uint8** images (B, 3, H, W) to float features
(B, D) and carries what the provenance of a number needs: ``name``, ``sha256`` (of its weights),
``resize`` (how images reach its input size) and ``num_features`` (torchmetrics reads it).

- ``inception``: the standard FID Inception (TF 2015-12-05 weights, torch-fidelity's port, 2048-d
  pool features, ``logits_unbiased`` for IS) from a **local file only**: ``--inception-weights`` or
  torch-fidelity's hub cache. Absent file -> one :class:`MissingWeightsError` naming the file and
  where to put it. Never a silent fallback to another extractor (its numbers would not compare).
- ``clip``: image embeddings of a frozen CLIP (``components.build_clip``).
- ``dinov2``: the CLS token of DINOv2 ViT-L/14 (1024-d), the space dgm-eval (Stein et al. 2023)
  recommends for the Fréchet distance; architecture from a local clone of facebookresearch/dinov2
  (``--dinov2-repo``), weights from the official ``dinov2_vitl14_pretrain.pth`` (``--dinov2-weights``).
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

EXTRACTORS = ("inception", "clip", "dinov2")  # built in; plug-ins add theirs (toy)
INCEPTION_FILE = "weights-inception-2015-12-05-6726825d.pth"
INCEPTION_URL = "https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/" + INCEPTION_FILE
# Match torch-fidelity (and so the published LDM FIDs): TF1-style bilinear resize to 299, no
# antialiasing. torchmetrics >= 1.8 defaults to antialias=True, which shifts FID.
INCEPTION_RESIZE = "torch-fidelity TF1-compatible bilinear to 299x299 (torchmetrics antialias=False)"

# clean-fid (Parmar et al. 2022): PIL bicubic per channel in float; we round to uint8 after it,
# because the Inception port takes uint8 (an error of at most half a grey level).
CLEAN_RESIZE = "clean-fid PIL bicubic to 299x299 per channel in float, rounded to uint8"
RESIZE_MODES = ("legacy", "clean")

DINOV2_ENTRY = "dinov2_vitl14"
DINOV2_FILE = "dinov2_vitl14_pretrain.pth"
DINOV2_URL = "https://dl.fbaipublicfiles.com/dinov2/dinov2_vitl14/" + DINOV2_FILE
DINOV2_REPO_URL = "https://github.com/facebookresearch/dinov2"
# dgm-eval's DINOv2 transform: torchvision Resize((224, 224), BICUBIC) on the PIL image (antialiased,
# uint8 out), ToTensor, ImageNet mean/std. torch's antialiased bicubic uses PIL's kernel (a=-0.5).
DINOV2_RESIZE = "antialiased bicubic to 224x224, rounded to uint8 levels, ImageNet mean/std (dgm-eval)"
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


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


def default_dinov2_paths() -> tuple[Path, Path]:
    """Where ``torch.hub.load("facebookresearch/dinov2", ...)`` would have cached the code and weights."""
    hub = Path(torch.hub.get_dir())
    return hub / "facebookresearch_dinov2_main", hub / "checkpoints" / DINOV2_FILE


def resolve_dinov2(repo: str | os.PathLike | None, weights: str | os.PathLike | None) -> tuple[Path, Path]:
    """(local dinov2 clone, weights file), each from its flag or torch.hub's cache, or one error
    naming the flag and what to put where. Cheap: run before any image is generated."""
    hub_repo, hub_weights = default_dinov2_paths()
    r = Path(repo).expanduser() if repo else hub_repo
    if not (r / "hubconf.py").is_file():
        where = (
            f"--dinov2-repo={str(repo)!r}" if repo else f"{hub_repo} (torch.hub's cache; or --dinov2-repo)"
        )
        raise MissingWeightsError(
            f"DINOv2 code not found at {where}: no hubconf.py there; git clone {DINOV2_REPO_URL} on a "
            f"machine with internet, copy the folder here and pass --dinov2-repo /path/to/dinov2"
        )
    w = Path(weights).expanduser() if weights else hub_weights
    if not w.is_file():
        where = f"--dinov2-weights={str(weights)!r}" if weights else f"{hub_weights} (torch.hub's cache)"
        raise MissingWeightsError(
            f"DINOv2 weights not found at {where}: download {DINOV2_URL} on a machine with internet, "
            f"then copy it to {hub_weights} or pass --dinov2-weights /path/to/{DINOV2_FILE}"
        )
    _dinov2_state(w, mmap=True)  # a damaged file is said now, not after the generation
    return r, w


def _brief(e: Exception, limit: int = 300) -> str:
    """``Type: message`` on one line, cut at ``limit``: torch's load errors run to many lines."""
    msg = " ".join(str(e).split())
    return f"{type(e).__name__}: {msg[:limit]}" + ("..." if len(msg) > limit else "")


def _dinov2_state(path: Path, mmap: bool = False) -> dict:
    """The weights file as a tensor state dict (``mmap``: tensors not read, only checked)."""
    import zipfile

    mmap = mmap and zipfile.is_zipfile(path)  # only torch's zip format maps; a legacy file is read
    try:
        sd = torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except Exception as e:  # noqa: BLE001 - the message must name the file
        raise MissingWeightsError(
            f"--dinov2-weights={str(path)!r} is not a loadable state dict: damaged, or not plain tensors "
            f"({type(e).__name__}; it is loaded with weights_only=True)"
        ) from e
    if not isinstance(sd, dict) or "cls_token" not in sd:
        raise MissingWeightsError(
            f"--dinov2-weights={str(path)!r} is not a DINOv2 ViT state dict (no cls_token): "
            f"expected the official {DINOV2_FILE}"
        )
    return sd


class DinoV2Features(FeatureExtractor):
    """DINOv2 ViT-L/14 CLS features (Oquab et al. 2023), as dgm-eval (Stein et al. 2023) computes
    them for FD-DINOv2; built by the clone's ``hubconf`` without download, then loaded strictly.
    Runs on the device it is moved to (images follow it)."""

    def __init__(self, repo: str | os.PathLike | None = None, weights: str | os.PathLike | None = None):
        super().__init__()
        repo_path, path = resolve_dinov2(repo, weights)
        try:
            net = torch.hub.load(str(repo_path), DINOV2_ENTRY, source="local", pretrained=False)
        except Exception as e:  # noqa: BLE001 - a clone of the wrong repo or version: name the flag
            raise MissingWeightsError(
                f"--dinov2-repo={str(repo_path)!r} cannot build {DINOV2_ENTRY} ({_brief(e)}); "
                f"it must be a clone of {DINOV2_REPO_URL}"
            ) from e
        try:  # strict: weights that do not fit the architecture would give a silently random space
            net.load_state_dict(_dinov2_state(path), strict=True)
        except RuntimeError as e:
            raise MissingWeightsError(
                f"--dinov2-weights={str(path)!r} does not fit {DINOV2_ENTRY} of {repo_path}: {_brief(e)}"
            ) from e
        self.net = net.requires_grad_(False).eval()
        self.num_features = int(net.embed_dim)
        self.name = f"dinov2-{DINOV2_ENTRY.split('_')[1]}/cls"
        self.sha256 = file_sha256(path)
        self.resize = DINOV2_RESIZE
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.extra = {"weights_file": str(path), "repo": str(repo_path), "entry": DINOV2_ENTRY}
        self.eval()  # no dropout or drop-path: the features are a fixed function of the images

    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 (B, 3, H, W) -> the normalised (B, 3, 224, 224) network input, on its device."""
        x = images.to(self.mean.device).float() / 255.0
        if x.shape[-2:] != (224, 224):
            x = nn.functional.interpolate(
                x, size=(224, 224), mode="bicubic", antialias=True, align_corners=False
            )
        x = (x * 255.0).round().clamp(0, 255) / 255.0  # dgm-eval's PIL resize returns uint8
        return (x - self.mean) / self.std

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        assert images.dtype == torch.uint8, "feature extractors take uint8 images"
        return self.net(self.preprocess(images)).float()  # DINOv2's forward: the normed CLS token


def build_extractor(
    kind: str,
    *,
    data_cfg=None,
    clip=None,
    clip_label: str = "clip",
    inception_weights: str | None = None,
    inception_output: str = "2048",
    resize: str = "legacy",
    dinov2_repo: str | None = None,
    dinov2_weights: str | None = None,
) -> FeatureExtractor:
    """The extractor named by ``--feature`` (``kind``: :data:`EXTRACTORS` or a plug-in's);
    ``resize`` (legacy | clean) applies to Inception, whose published numbers depend on it."""
    if kind == "dinov2":
        return DinoV2Features(dinov2_repo, dinov2_weights)
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
