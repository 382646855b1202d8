"""The toy world (docs/ARCHITECTURE.md "The toy world"): captioned images of one or two simple objects on a
plain background, generated deterministically from a seed and written as ordinary webdataset
shards (``.png`` + ``.txt`` + ``.json``), so the same loader serves it and LAION.

Kept deliberately easy so that small models learn it in minutes on a CPU: four shapes, four
clearly distinct colours, two sizes, two relations. Each sample's ``.json`` holds its
*canonical* attributes::

    {"objects": [{"shape", "color", "size", "x", "y"}, ...], "relation": "left of" | "above" | null}

Canonical means: for two objects, ``objects[0]`` is the left (``"left of"``) or upper
(``"above"``) one, whatever order the caption's paraphrase uses ("a blue square to the right of a
red circle" has the red circle first). ``x``, ``y`` are the object's centre in [0, 1] image
coordinates (y down). Captions always name size, colour and shape of every object, so the
attributes are exactly what the prompt asks for (plus the free position).

The world is generated once, by the toy room's preparer (``toy/prepare.py``) before a run or an
evaluation, into ``<cache>/toy/world-<params_key>/`` (``data.cache_dir`` overrides the cache
root), in a temporary folder renamed into place when complete, so concurrent processes never see
half a world; a new one is made exactly when its parameters change.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import re
import shutil
import struct
import time
import zlib
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from ldm_vs_gan.data.shards import ShardWriter
from ldm_vs_gan.errors import UserError, bad_value
from ldm_vs_gan.paths import cache_dir, params_key
from ldm_vs_gan.toy import config

SHAPES = ("circle", "square", "triangle", "cross")
COLORS = ("red", "green", "blue", "yellow")
SIZES = ("small", "large")
RELATIONS = ("left of", "above")
RGB = {"red": (220, 40, 40), "green": (40, 190, 70), "blue": (50, 90, 235), "yellow": (240, 215, 40)}
SIZE_FRACTION = {"small": 0.24, "large": 0.42}  # object diameter / image side
WORLD_VERSION = 2  # bump when rendering or captions change: old caches are then not reused
SPLITS = ("train", "heldout")

SINGLE_TEMPLATES = (
    "a {s} {c} {h}",
    "{s} {c} {h}",
    "a picture of a {s} {c} {h}",
    "one {s} {c} {h}",
    "a {s} {h} colored {c}",
    "a {c} {h} of {s} size",
)
TWO_TEMPLATES = {  # (template, swapped): swapped templates name the second canonical object first
    "left of": (
        ("{a} to the left of {b}", False),
        ("{a} left of {b}", False),
        ("{b} to the right of {a}", True),
        ("{b} right of {a}", True),
    ),
    "above": (
        ("{a} above {b}", False),
        ("{a} on top of {b}", False),
        ("{b} below {a}", True),
        ("{b} under {a}", True),
    ),
}


# --------------------------------------------------------------------------- params and cache


def world_params(data_cfg) -> dict:
    """Everything that determines the world's bytes (the cache key). ``data_cfg``: a ``data``
    node (read by :class:`~ldm_vs_gan.toy.config.ToyData`, which checks the values) or its
    typed object."""
    c = config.read(data_cfg)
    p = {
        "version": WORLD_VERSION,
        "seed": int(c.world_seed),
        "resolution": int(c.resolution),
        "n_train": int(c.n_train),
        "n_heldout": int(c.n_heldout),
        "two_object_share": float(c.two_object_share),
        "background": list(c.background),
        "shard_size": int(c.shard_size),
    }
    if c.layout != "halves":  # in the key only when not "halves": worlds made before keep their cache
        p["layout"] = c.layout
    return p


def world_dir(data_cfg) -> Path:
    return (
        cache_dir("toy", root=config.read(data_cfg).cache_dir) / f"world-{params_key(world_params(data_cfg))}"
    )


@contextlib.contextmanager
def file_lock(path: Path):
    """An exclusive advisory lock (fcntl) so that concurrent first uses (DDP ranks, parallel test
    sessions) do the work once and the others wait for it; a no-op where fcntl does not exist.
    Correctness never depends on it: results are still written atomically."""
    try:
        import fcntl
    except ImportError:  # Windows
        yield
        return
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def ensure_world(data_cfg, verbose: bool = True) -> Path:
    """The world's folder, generating it first if needed (atomic: tmp folder, then rename)."""
    final = world_dir(data_cfg)
    if (final / "params.json").exists():
        return final
    with file_lock(final.with_name(final.name + ".lock")):
        if (final / "params.json").exists():  # made by another process while we waited
            return final
        return _generate(data_cfg, final, verbose)


def _generate(data_cfg, final: Path, verbose: bool) -> Path:
    params = world_params(data_cfg)
    tmp = final.with_name(f"{final.name}.tmp-{os.getpid()}-{time.time_ns()}")
    tmp.mkdir(parents=True)
    try:
        t0, c0 = time.perf_counter(), time.process_time()
        workers = config.read(data_cfg).gen_workers
        for split in SPLITS:
            write_split(tmp, split, params, workers)
        seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
        (tmp / "params.json").write_text(
            json.dumps(
                {**params, "generation_seconds": round(seconds, 2), "generation_cpu_seconds": round(cpu, 2)},
                indent=1,
            )
        )
        try:
            os.rename(tmp, final)
        except OSError:  # another process finished first: its world is identical, use it
            shutil.rmtree(tmp, ignore_errors=True)
        if verbose:
            n = params["n_train"] + params["n_heldout"]
            print(f"[toy] generated {n} samples in {seconds:.1f}s ({cpu:.1f}s CPU) -> {final}", flush=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def shard_paths(data_cfg, split: str) -> list[str]:
    """The shard files of ``split`` of a generated world (generating is the preparer's job)."""
    if split not in SPLITS:
        raise bad_value("split", split, SPLITS)
    folder = world_dir(data_cfg)
    if not (folder / "params.json").exists():
        raise UserError(
            f"the toy world for these data.* settings is not generated yet ({folder}): training "
            "and evaluation make it first; from Python call ldm_vs_gan.plugins.prepare(cfg, 'train') "
            "or ldm_vs_gan.toy.world.ensure_world(cfg.data)"
        )
    return [str(p) for p in sorted(folder.glob(f"{split}-*.tar"))]


# --------------------------------------------------------------------------- sampling

CHUNK = 1000  # samples drawn per RNG: vectorised draws, and chunks could go to separate processes


def _centre(u: np.ndarray, d: np.ndarray, lo, hi) -> np.ndarray:
    """Centre coordinates (in [0,1]) putting objects of diameter d inside [lo, hi] (margin 0.03)."""
    a, b = lo + d / 2 + 0.03, hi - d / 2 - 0.03
    return np.where(b > a, a + u * (b - a), (lo + hi) / 2)


LAYOUTS = ("halves", "aligned")


def sample_chunk(
    rng: np.random.Generator, n: int, two_object_share: float, layout: str = "halves"
) -> list[dict]:
    """``n`` canonical attribute records, drawn with vectorised numpy calls (one per quantity)."""
    two = rng.random(n) < two_object_share
    shape = rng.integers(0, len(SHAPES), (n, 2))
    color = rng.integers(0, len(COLORS), (n, 2))
    size = rng.integers(0, len(SIZES), (n, 2))
    relation = rng.integers(0, len(RELATIONS), n)
    u = rng.random((n, 2, 2))
    # two distinguishable objects: same shape and colour -> shift the second colour (uniformly)
    same = (shape[:, 0] == shape[:, 1]) & (color[:, 0] == color[:, 1])
    shift = rng.integers(1, len(COLORS), n)
    color[:, 1] = np.where(same, (color[:, 0] + shift) % len(COLORS), color[:, 1])
    diam = np.array([SIZE_FRACTION[s] for s in SIZES])[size]  # (n, 2)
    # one object: anywhere; two: the first (canonical) one in the left/top half, the second in
    # the right/bottom half, free along the other axis
    along0 = np.where(
        two, _centre(u[:, 0, 0], diam[:, 0], 0.0, 0.5), _centre(u[:, 0, 0], diam[:, 0], 0.0, 1.0)
    )
    along1 = _centre(u[:, 1, 0], diam[:, 1], 0.5, 1.0)
    across = _centre(u[:, :, 1], diam, 0.0, 1.0)
    if layout == "aligned":
        # the second object stays within +-0.15 of the first across the relation's axis: always
        # less than half their distance along it (>= 0.30), so "left of" never also looks "above"
        lo1 = diam[:, 1] / 2 + 0.03
        a1 = np.clip(across[:, 0] + (u[:, 1, 1] - 0.5) * 0.3, lo1, 1 - lo1)
        across[:, 1] = np.where(two, a1, across[:, 1])
    out = []
    for i in range(n):
        k = 2 if two[i] else 1
        rel = RELATIONS[relation[i]] if two[i] else None
        objs = []
        for j in range(k):
            along = along0[i] if j == 0 else along1[i]
            x, y = (along, across[i, j]) if rel != "above" else (across[i, j], along)
            objs.append(
                {
                    "shape": SHAPES[shape[i, j]],
                    "color": COLORS[color[i, j]],
                    "size": SIZES[size[i, j]],
                    "x": round(float(x), 4),
                    "y": round(float(y), 4),
                }
            )
        out.append({"objects": objs, "relation": rel})
    return out


def _phrase(o: dict) -> str:
    return f"{o['size']} {o['color']} {o['shape']}"


def make_caption(attrs: dict, choice: int) -> str:
    """The caption of canonical ``attrs``; ``choice`` (any int) picks the paraphrase template."""
    objs = attrs["objects"]
    if len(objs) == 1:
        t = SINGLE_TEMPLATES[choice % len(SINGLE_TEMPLATES)]
        o = objs[0]
        return t.format(s=o["size"], c=o["color"], h=o["shape"])
    t, _ = TWO_TEMPLATES[attrs["relation"]][choice % 4]
    return t.format(a="a " + _phrase(objs[0]), b="a " + _phrase(objs[1]))


_WORD = re.compile(r"[a-z]+")


def parse_caption(caption: str) -> dict | None:
    """The canonical attributes a toy caption asks for (without positions), or None when the
    caption is not a toy-world caption. Inverse of :func:`make_caption` for all its templates, so
    any prompt in the world's language can be judged even without its ``.json``."""
    words = _WORD.findall(caption.lower())
    tokens = [
        (f, w)
        for w in words
        for f, vocab in (("size", SIZES), ("color", COLORS), ("shape", SHAPES))
        if w in vocab
    ]
    shape_at = [i for i, (f, _) in enumerate(tokens) if f == "shape"]
    if len(shape_at) not in (1, 2):
        return None
    groups = [tokens] if len(shape_at) == 1 else [tokens[: shape_at[0] + 1], tokens[shape_at[0] + 1 :]]
    objs = []
    for g in groups:
        o = dict(g)
        if len(g) != 3 or len(o) != 3:  # each object names exactly one size, colour and shape
            return None
        objs.append({"shape": o["shape"], "color": o["color"], "size": o["size"]})
    if len(objs) == 1:
        return {"objects": objs, "relation": None}
    ws = set(words)
    if "left" in ws or "right" in ws:
        relation, swapped = "left of", "right" in ws
    elif ws & {"above", "top", "below", "under"}:
        relation, swapped = "above", bool(ws & {"below", "under"})
    else:
        return None
    return {"objects": objs[::-1] if swapped else objs, "relation": relation}


# --------------------------------------------------------------------------- rendering

_SS = 8  # supersampling of the mask table: antialiased edges
_SUBPIX = 4  # object centres are quantised to 1/4 pixel


@functools.lru_cache(maxsize=4)
def _mask_table(resolution: int) -> dict:
    """Coverage masks (float32, (M, M)) per (shape, size, x-subpixel, y-subpixel): drawn once at 8x
    with PIL and box-filtered down, so rendering a sample is a few array blends (fast world
    generation: 50k samples in seconds)."""
    m = int(np.ceil(max(SIZE_FRACTION.values()) * resolution)) + 4
    table = {}
    for shape in SHAPES:
        for size in SIZES:
            r = SIZE_FRACTION[size] * resolution * _SS / 2
            for fx in range(_SUBPIX):
                for fy in range(_SUBPIX):
                    cx, cy = (m // 2 + fx / _SUBPIX) * _SS, (m // 2 + fy / _SUBPIX) * _SS
                    img = Image.new("L", (m * _SS, m * _SS), 0)
                    draw = ImageDraw.Draw(img)
                    if shape == "circle":
                        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=255)
                    elif shape == "square":
                        q = r * 0.86  # about the circle's visual weight
                        draw.rectangle((cx - q, cy - q, cx + q, cy + q), fill=255)
                    elif shape == "triangle":
                        draw.polygon([(cx, cy - r), (cx + r, cy + r * 0.8), (cx - r, cy + r * 0.8)], fill=255)
                    elif shape == "cross":
                        t = r * 0.38
                        draw.rectangle((cx - r, cy - t, cx + r, cy + t), fill=255)
                        draw.rectangle((cx - t, cy - r, cx + t, cy + r), fill=255)
                    small = img.resize((m, m), Image.BOX)
                    table[shape, size, fx, fy] = np.asarray(small, dtype=np.float32)[..., None] / 255.0
    return table


def render(attrs: dict, resolution: int = 32, background=(40, 40, 40)) -> np.ndarray:
    """(H, W, 3) uint8 image of the attributes (object centres quantised to 1/4 pixel)."""
    table = _mask_table(resolution)
    img = np.empty((resolution, resolution, 3), np.float32)
    img[:] = np.asarray(background, np.float32)
    for o in attrs["objects"]:
        qx, qy = round(o["x"] * resolution * _SUBPIX), round(o["y"] * resolution * _SUBPIX)
        bx, fx = divmod(qx, _SUBPIX)
        by, fy = divmod(qy, _SUBPIX)
        mask = table[o["shape"], o["size"], fx, fy]
        m = mask.shape[0]
        x0, y0 = bx - m // 2, by - m // 2
        # clip the mask to the image (objects lie inside by construction; this is for safety)
        ax0, ay0 = max(x0, 0), max(y0, 0)
        ax1, ay1 = min(x0 + m, resolution), min(y0 + m, resolution)
        a = mask[ay0 - y0 : ay1 - y0, ax0 - x0 : ax1 - x0]
        region = img[ay0:ay1, ax0:ax1]
        region += a * (np.asarray(RGB[o["color"]], np.float32) - region)
    img += 0.5  # round to nearest (values stay in [0, 255.5): blends of in-range colours)
    return img.astype(np.uint8)


def encode_png(img: np.ndarray) -> bytes:
    """A minimal PNG encoder (8-bit RGB, filter 0, zlib level 1): 10x faster than PIL's for
    32-px images, where PIL's per-call overhead dominates. Output is a standard PNG."""
    h, w, _ = img.shape
    raw = np.zeros((h, 1 + 3 * w), np.uint8)
    raw[:, 1:] = img.reshape(h, 3 * w)

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))

    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(raw.tobytes(), 1))
        + chunk(b"IEND", b"")
    )


def make_chunk(params: dict, split: str, c: int) -> list[dict]:
    """Samples ``[c*CHUNK, (c+1)*CHUNK)`` of ``split`` (clipped to its size): a pure function of
    (params, split, c)."""
    n_total = params["n_train"] if split == "train" else params["n_heldout"]
    lo, hi = c * CHUNK, min((c + 1) * CHUNK, n_total)
    rng = np.random.default_rng([params["seed"], SPLITS.index(split), c, 0x70F])
    attrs = sample_chunk(rng, hi - lo, params["two_object_share"], params.get("layout", "halves"))
    template = rng.integers(0, 1 << 30, hi - lo)
    out = []
    for i, a in zip(range(lo, hi), attrs):
        img = render(a, params["resolution"], params["background"])
        caption = make_caption(a, int(template[i - lo]))
        out.append({"__key__": f"{split}-{i:07d}", "png": encode_png(img), "txt": caption, "json": a})
    return out


def write_split(folder: Path, split: str, params: dict, workers: int = 1) -> list[str]:
    """Write one split's shards; chunks are rendered by ``workers`` processes (the bytes do not
    depend on it: each chunk is a pure function of its number) and written in order."""
    n = params["n_train"] if split == "train" else params["n_heldout"]
    chunks = range(-(-n // CHUNK))
    with ShardWriter(str(folder / f"{split}-%06d.tar"), maxcount=params["shard_size"]) as w:
        if workers > 1 and len(chunks) >= 4:
            import multiprocessing as mp
            from concurrent.futures import ProcessPoolExecutor

            ctx = mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn")
            with ProcessPoolExecutor(workers, mp_context=ctx) as ex:
                for samples in ex.map(make_chunk, [params] * len(chunks), [split] * len(chunks), chunks):
                    for sample in samples:
                        w.write(sample)
        else:
            for c in chunks:
                for sample in make_chunk(params, split, c):
                    w.write(sample)
    return w.paths
