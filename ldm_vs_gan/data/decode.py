"""From a raw webdataset sample (``{ext: bytes}``) to an image tensor + caption, or a skip reason.

Bad samples are a fact of web-scale data (img2dataset shards carry truncated downloads, empty
captions, CMYK JPEGs, decompression bombs). Every failure here becomes a *reason* string that the
loader counts and hands to the trainer in ``Batch.skipped``; nothing sleeps, nothing is dropped
silently. Reasons:

``no_image``       no member with an image extension
``undecodable``    PIL cannot read the bytes (truncated, not an image)
``too_large``      more than ``max_pixels`` pixels (decompression-bomb guard; checked on the header,
                   before any pixel is decoded)
``too_small``      shorter side below ``min_size``
``bad_aspect``     long/short side ratio above ``max_aspect``
``bad_mode``       grayscale / CMYK / alpha / palette image while ``image_modes: skip``
                   (with the default ``convert``: converted to RGB, alpha composited on white,
                   16-bit samples scaled by 1/257 and float samples read as [0, 1], see
                   :func:`to_8bit`)
``no_caption``     no caption member (or JSON field) at all
``bad_text``       caption bytes are not UTF-8
``bad_json``       ``.json`` member is not valid JSON while the caption or attributes need it
``empty_caption``  caption is empty or whitespace only
``no_arrays``      (``data.precomputed``) no ``.npy`` member
``bad_array``      (``data.precomputed``) a ``.npy`` member numpy cannot read without pickle

With ``data.precomputed`` a sample is what ``python -m ldm_vs_gan.precompute`` wrote: its ``.npy``
arrays become ``extras`` and its image, which only the held-out split keeps (already resized and
cropped, so the size filters were applied when it was written), is decoded when present.
"""

from __future__ import annotations

import io
import json
import warnings
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from ldm_vs_gan.errors import UserError

IMAGE_EXTS = ("jpg", "jpeg", "png", "webp")
SKIP_REASONS = (
    "no_image",
    "undecodable",
    "too_large",
    "too_small",
    "bad_aspect",
    "bad_mode",
    "no_caption",
    "bad_text",
    "bad_json",
    "empty_caption",
    "no_arrays",
    "bad_array",
)


ALPHA_MODES = ("RGBA", "LA", "PA", "RGBa", "La")  # composited on white, not just dropped


class Skip(Exception):
    """A sample that cannot be used; ``args[0]`` is the reason (one of :data:`SKIP_REASONS`)."""


@dataclass(frozen=True)
class DecodeOptions:
    """What the decoder does; built from the ``data`` config (configs/data/*.yaml document each)."""

    resolution: int = 256
    crop: str = "center"  # center | random
    hflip: bool = False  # random horizontal flip (never for the toy world: it has "left of")
    caption: str = "txt"  # txt | json
    caption_field: str = "caption"  # JSON field when caption == "json"
    min_size: int = 0
    max_aspect: float = 0.0  # 0 = no limit
    max_pixels: int = 89_478_485  # PIL's own bomb threshold (2x is its hard error)
    image_modes: str = "convert"  # convert | skip
    precomputed: bool = False  # samples hold .npy arrays (and no image, except held-out ones)

    @staticmethod
    def from_config(cfg) -> DecodeOptions:
        """From a ``data`` node (read and checked by its schema, ``data/config.py``) or its typed
        object; the caption keys exist for sources that have them (else txt)."""
        from ldm_vs_gan.data import config

        c = config.read(cfg)
        return DecodeOptions(
            resolution=c.resolution,
            crop=c.crop,
            hflip=c.hflip,
            caption=getattr(c, "caption", "txt"),
            caption_field=getattr(c, "caption_field", "caption"),
            min_size=c.min_size,
            max_aspect=float(c.max_aspect),
            max_pixels=c.max_pixels,
            image_modes=c.image_modes,
            precomputed=bool(getattr(c, "precomputed", False)),
        )


ADVICE = {  # skip reason -> what the config key behind it does, and how to change it
    "too_small": lambda o: f"images smaller than data.min_size={o.min_size} are skipped: lower data.min_size",
    "bad_aspect": lambda o: (
        f"images with a side ratio above data.max_aspect={o.max_aspect} are skipped: "
        "raise data.max_aspect (0 = no limit)"
    ),
    "too_large": lambda o: (
        f"images over data.max_pixels={o.max_pixels} pixels are skipped: raise data.max_pixels"
    ),
    "bad_mode": lambda o: (
        "non-RGB images are skipped with data.image_modes=skip: set data.image_modes=convert"
    ),
    "no_caption": lambda o: (
        f"samples without a caption in data.caption={o.caption!r} are skipped: "
        "check data.caption and data.caption_field"
    ),
}


def skipped_in_a_row(n: int, counts: dict[str, int], where: str, opts: DecodeOptions) -> UserError:
    """The one-line error for a stream of nothing but skipped samples, naming the config key
    behind each reason that has one (those samples are filtered, not corrupt)."""
    hints = [advice(opts) for reason, advice in ADVICE.items() if reason in counts]
    if any(reason not in ADVICE for reason in counts):
        hints.append("the other reasons mean damaged data: check the shards")
    return UserError(
        f"{n} samples in a row were skipped in {where} (skip counts: {counts}); {'; '.join(hints)}"
    )


def _text(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise Skip("bad_text") from None


def open_image(raw: bytes, opts: DecodeOptions) -> Image.Image:
    """Decode to an RGB PIL image, with the size/mode checks done on the header first."""
    with warnings.catch_warnings():  # PIL's bomb warning becomes our too_large skip
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            img = Image.open(io.BytesIO(raw))
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise Skip("too_large") from None
        except Exception:
            raise Skip("undecodable") from None
        w, h = img.size
        if w * h > opts.max_pixels:
            raise Skip("too_large")
        if min(w, h) < max(opts.min_size, 1):
            raise Skip("too_small")
        if opts.max_aspect and max(w, h) / min(w, h) > opts.max_aspect:
            raise Skip("bad_aspect")
        if img.mode != "RGB" and opts.image_modes == "skip":
            raise Skip("bad_mode")
        try:
            img.load()
            img = to_8bit(img)
            if img.mode in ALPHA_MODES or (img.mode == "P" and "transparency" in img.info):
                rgba = img.convert("RGBA")
                bg = Image.new("RGBA", rgba.size, (255, 255, 255, 255))  # alpha over white
                img = Image.alpha_composite(bg, rgba).convert("RGB")
            elif img.mode != "RGB":
                img = img.convert("RGB")  # L, CMYK, P, I;16 ...
        except Exception:
            raise Skip("undecodable") from None
    return img


def to_8bit(img: Image.Image) -> Image.Image:
    """High-depth grayscale as 8-bit ``L`` (PIL's own convert clips these at 255: a white image).
    16-bit samples (``I;16*``, and ``I``, the mode PIL gives 16-bit PNG/TIFF data in) are scaled
    by 1/257, rounded; float samples (``F``) are read as [0, 1]. 16-bit RGB(A) PNGs already open
    as 8-bit RGB(A) (PIL keeps the high byte)."""
    if img.mode == "F":
        a = np.nan_to_num(np.asarray(img, dtype=np.float32)).clip(0.0, 1.0) * 255.0
        return Image.fromarray(np.rint(a).astype(np.uint8))
    if img.mode == "I" or img.mode.startswith("I;16"):
        a = np.asarray(img).astype(np.int64).clip(0, 65535)
        return Image.fromarray(((a + 128) // 257).astype(np.uint8))
    return img


def resize_crop(img: Image.Image, opts: DecodeOptions, rng: np.random.Generator | None) -> np.ndarray:
    """Shorter side to ``resolution`` (bicubic, antialiased: PIL widens the filter support when
    downsampling), then a center or random square crop, then an optional random flip.
    Returns (H, W, 3) uint8."""
    r = opts.resolution
    w, h = img.size
    if (w, h) != (r, r):
        s = r / min(w, h)
        nw, nh = max(r, round(w * s)), max(r, round(h * s))
        img = img.resize((nw, nh), Image.BICUBIC)
        w, h = nw, nh
        if opts.crop == "random" and rng is not None:
            x0, y0 = int(rng.integers(0, w - r + 1)), int(rng.integers(0, h - r + 1))
        else:
            x0, y0 = (w - r) // 2, (h - r) // 2
        if (w, h) != (r, r):
            img = img.crop((x0, y0, x0 + r, y0 + r))
    arr = np.asarray(img, dtype=np.uint8)
    if opts.hflip and rng is not None and rng.random() < 0.5:
        arr = arr[:, ::-1]
    return arr


def _caption(raw: dict, opts: DecodeOptions) -> tuple[str, dict | None]:
    """(caption, parsed ``.json`` or None) of a raw sample; raises :class:`Skip`."""
    meta = None
    if "json" in raw:
        try:
            meta = json.loads(_text(raw["json"]))
        except Skip:
            raise
        except ValueError:
            if opts.caption == "json":
                raise Skip("bad_json") from None
    if opts.caption == "json":
        if not isinstance(meta, dict) or meta.get(opts.caption_field) is None:
            raise Skip("no_caption")
        caption = str(meta[opts.caption_field])
    else:
        if "txt" not in raw:
            raise Skip("no_caption")
        caption = _text(raw["txt"])
    caption = caption.strip()
    if not caption:
        raise Skip("empty_caption")
    return caption, meta


def _chw(arr: np.ndarray) -> torch.Tensor:
    """(H,W,3) uint8 -> a (3,H,W) view (torch.from_numpy shares memory and wants it writable)."""
    if not arr.flags.writeable or not arr.flags.c_contiguous:
        arr = arr.copy()
    return torch.from_numpy(arr).permute(2, 0, 1)


def decode_sample(raw: dict, opts: DecodeOptions, rng: np.random.Generator | None = None) -> dict:
    """``{"image": uint8 (3,H,W), "caption", "key", "attributes"}``; raises :class:`Skip`."""
    if opts.precomputed:
        return decode_precomputed(raw, opts)
    ext = next((e for e in IMAGE_EXTS if e in raw), None)
    if ext is None:
        if any(k.endswith(".npy") for k in raw):  # a precomputed shard read as an image shard
            raise UserError(
                f"sample {raw.get('__key__', '')!r} of {raw.get('__shard__', 'the shards')} holds "
                "precomputed arrays (.npy) and no image: set data.precomputed=true"
            )
        raise Skip("no_image")
    caption, meta = _caption(raw, opts)
    img = open_image(raw[ext], opts)
    image = _chw(resize_crop(img, opts, rng))
    attributes = meta if isinstance(meta, dict) and "objects" in meta else None
    return {"image": image, "caption": caption, "key": raw.get("__key__", ""), "attributes": attributes}


def _array(raw: bytes) -> torch.Tensor:
    try:  # no pickle: a shard is data, never code
        return torch.from_numpy(np.load(io.BytesIO(raw), allow_pickle=False))
    except (ValueError, OSError, EOFError):
        raise Skip("bad_array") from None


def decode_precomputed(raw: dict, opts: DecodeOptions) -> dict:
    """A precomputed sample: ``decode_sample``'s dict plus ``extras`` (``{name: tensor}`` from
    its ``NAME.npy`` members); ``image`` is None unless the sample keeps one (held-out split)."""
    caption, meta = _caption(raw, opts)
    extras = {ext[: -len(".npy")]: _array(raw[ext]) for ext in sorted(raw) if ext.endswith(".npy")}
    if not extras:
        raise Skip("no_arrays")
    ext = next((e for e in IMAGE_EXTS if e in raw), None)
    image = None
    if ext is not None:  # written at data.resolution after the filters: only checked and cropped
        lenient = DecodeOptions(resolution=opts.resolution, max_pixels=opts.max_pixels)
        image = _chw(resize_crop(open_image(raw[ext], lenient), lenient, None))
    attributes = meta if isinstance(meta, dict) and "objects" in meta else None
    key = raw.get("__key__", "")
    return {"image": image, "caption": caption, "key": key, "attributes": attributes, "extras": extras}


def to_float(images_uint8: torch.Tensor) -> torch.Tensor:
    """uint8 [0,255] -> float32 [-1,1] (the Batch convention)."""
    return images_uint8.float().div_(127.5).sub_(1.0)
