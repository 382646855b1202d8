"""The prompt sets of an evaluation: captions (and ground-truth attributes where the data has them),
the matching real images as uint8 chunks, and the data provenance that keys their cached statistics.

- ``toy``: the toy world's held-out split, first N in file order.
- ``heldout``: the run's own held-out split (``data.heldout_shards``, ``data.heldout_root``, ...),
  first N in file order; ``shards``: the same for any shards given (``--shards``), read with the
  run's decoding settings (resolution, crop, caption field).
- ``coco``: COCO val, N images with one seeded random caption each.

Real-image statistics are cached under the data's content: the held-out sets' key holds the
sha256 of the selected samples' bytes, so new or changed files never reuse old statistics.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch

from ldm_vs_gan.errors import UserError, bad_value

DATA = ("toy", "heldout", "shards", "coco")
CONFIGS = Path(__file__).resolve().parents[2] / "configs"
MAX_HELDOUT = 30000  # the default N of a held-out set: all of it, up to the usual FID-30k


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    return ((images.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).cpu()


def data_choice(args, cfg) -> str:
    """``--data``, or the run's default: toy for toy runs, else ``shards`` / ``coco`` when their
    flag is given, else the run's own held-out split."""
    if args.shards and args.data not in (None, "shards"):
        raise UserError(f"--shards goes with --data shards, not --data {args.data}")
    if args.data:
        return args.data
    if args.shards:
        return "shards"
    if cfg.data.get("name") == "toy":
        return "toy"
    return "coco" if args.coco_root else "heldout"


def feature_choice(args, data: str) -> tuple[str, str]:
    """(feature space, why it was chosen): recorded in the provenance."""
    from ldm_vs_gan.errors import MissingWeightsError
    from ldm_vs_gan.metrics.features import resolve_inception_weights

    if args.feature:
        return args.feature, "--feature"
    if data == "toy":
        return "toy", "toy data: the toy judge's features"
    try:
        resolve_inception_weights(args.inception_weights)
        return "inception", "Inception weights found"
    except MissingWeightsError:
        return "clip", "no Inception weights on this machine: the run's CLIP image features"


def prompt_set(
    cfg, data: str, n: int | None, seed: int, coco_root: str | None = None, shards: str | None = None
) -> dict:
    """captions, attributes, ``real()``: an iterator of uint8 chunks of the matching real images, and
    the data provenance. ``n`` None: the source's default count."""
    if data in ("heldout", "shards"):
        return heldout_prompt_set(cfg, data, n, shards)
    if data == "coco":
        return coco_prompt_set(cfg, n or 30000, seed, coco_root)
    n = n or 1000
    if data == "toy":
        from ldm_vs_gan.data import heldout_batch

        if cfg.data.get("name") != "toy":
            raise UserError(
                f"--data toy needs a toy-world run; {cfg.data.get('name')!r} was trained on other data"
            )
        avail = int(cfg.data.get("n_heldout", n))
        if n > avail:
            raise UserError(f"--num-samples {n} > data.n_heldout={avail} held-out toy images")
        b = heldout_batch(cfg.data, n)
        return {
            "captions": b.captions,
            "attributes": b.attributes,
            "real": lambda: iter([to_uint8(b.images)]),
            "resolution": int(b.images.shape[-1]),
            "data_cfg": cfg.data,
            "prov": {
                "source": "toy",
                "split": "heldout",
                "selection": f"first {n}",
                "resolution": int(b.images.shape[-1]),
                "world": dict(cfg.data),
            },
        }
    raise bad_value("--data", data, DATA)


def coco_prompt_set(cfg, n: int, seed: int, coco_root: str | None) -> dict:
    """COCO val captions, one random caption per image (seeded: ``data.choice_seed``), the matching
    real images read in chunks at the run's resolution (30k images never sit in memory at once)."""
    from omegaconf import OmegaConf, open_dict

    from ldm_vs_gan.data import build_source, heldout_batch

    ccfg = (
        cfg.data.copy() if cfg.data.get("name") == "coco" else OmegaConf.load(CONFIGS / "data" / "coco.yaml")
    )
    with open_dict(ccfg):
        if coco_root:
            ccfg.root = coco_root
        ccfg.n, ccfg.choice_seed = n, seed
        ccfg.resolution = int(cfg.data.get("resolution", ccfg.get("resolution", 256)))
    if not ccfg.get("root"):
        raise UserError(
            "COCO evaluation needs the COCO folder: pass --coco-root DIR "
            "(annotations/captions_val2014.json + val2014/)"
        )
    src = build_source(ccfg, "heldout")
    if len(src) < n:
        raise UserError(f"--num-samples {n} > {len(src)} COCO images under {ccfg.root}")
    captions = [c for _, _, c in src.items[:n]]

    def real(chunk: int = 500):
        for off in range(0, n, chunk):
            b = heldout_batch(ccfg, min(chunk, n - off), off)
            if b.skipped:
                raise UserError(f"COCO images [{off}, {off + chunk}) could not all be decoded: {b.skipped}")
            yield to_uint8(b.images)

    res = int(ccfg.resolution)
    return {
        "captions": captions,
        "attributes": [None] * n,
        "real": real,
        "resolution": res,
        "data_cfg": None,
        "prov": {
            "source": "coco",
            "split": f"{ccfg.subset}{ccfg.year}",
            "root": str(ccfg.root),
            "selection": f"{n} images, one random caption each, choice_seed {seed}",
            "resolution": res,
            "real_resize": "shorter side to resolution + center crop (data loader)",
        },
    }


def heldout_prompt_set(cfg, data: str, n: int | None, shards: str | None) -> dict:
    """The first N samples of the run's held-out split (``heldout``) or of ``shards``."""
    from ldm_vs_gan.data import build_source

    dcfg, where = _heldout_config(cfg, data, shards)
    src = build_source(dcfg, "heldout")
    if src is None:
        raise UserError(f"{where} is streamed (URLs or data.mode=stream): evaluation needs local files")
    n = n or min(len(src), MAX_HELDOUT)
    if n > len(src):
        raise UserError(f"--num-samples {n} > {len(src)} held-out samples in {where}")
    captions, attributes = [], []
    for chunk in _heldout_chunks(dcfg, n, where):
        captions += chunk.captions
        attributes += list(chunk.attributes or [None] * len(chunk))
    res = int(dcfg.get("resolution"))
    return {
        "captions": captions,
        "attributes": attributes,
        "real": lambda: (to_uint8(b.images) for b in _heldout_chunks(dcfg, n, where)),
        "resolution": res,
        "data_cfg": None,
        "prov": {
            "source": data,
            "split": where,
            "selection": f"first {n} in file order; content sha256 {_content_sha256(src, n)}",
            "resolution": res,
            "real_resize": f"shorter side to resolution + {dcfg.get('crop', 'center')} crop (data loader)",
        },
    }


def _heldout_config(cfg, data: str, shards: str | None):
    """(data config to read, the key or flag it comes from)."""
    from omegaconf import OmegaConf, open_dict

    if data == "shards":
        if not shards:
            raise UserError("--data shards needs --shards PATTERN (path, glob or brace pattern)")
        dcfg = OmegaConf.load(CONFIGS / "data" / "laion.yaml")
        with open_dict(dcfg):
            for k in ("resolution", "caption", "caption_field", "min_size", "max_aspect"):
                if cfg.data.get(k) is not None and k in dcfg:
                    dcfg[k] = cfg.data.get(k)
            dcfg.shards = dcfg.heldout_shards = shards
            dcfg.crop = "center"  # real images for statistics: no random crop
        return dcfg, f"--shards {shards}"
    dcfg = cfg.data.copy()
    with open_dict(dcfg):
        if "crop" in dcfg:
            dcfg.crop = "center"
        if "hflip" in dcfg:
            dcfg.hflip = False
    return dcfg, f"the run's held-out split (data={cfg.data.get('name')})"


def _heldout_chunks(dcfg, n: int, where: str, chunk: int = 500):
    from ldm_vs_gan.data import heldout_batch

    for off in range(0, n, chunk):
        b = heldout_batch(dcfg, min(chunk, n - off), off)
        if len(b) != min(chunk, n - off):
            raise UserError(
                f"held-out samples [{off}, {off + chunk}) of {where} could not all be read: {b.skipped}; "
                "use --num-samples to evaluate on fewer"
            )
        yield b


def _content_sha256(source, n: int) -> str:
    """sha256 of the first ``n`` samples' bytes (member names and contents, in order)."""
    h = hashlib.sha256()
    for i in range(n):
        for ext, raw in sorted(source.read(i).items()):
            if not ext.startswith("__"):
                h.update(ext.encode() + b"\0" + (raw if isinstance(raw, bytes) else str(raw).encode()))
    return h.hexdigest()[:16]
