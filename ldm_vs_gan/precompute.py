"""``python -m ldm_vs_gan.precompute [overrides] out=DIR``: encode the LDM's data once into shards
of autoencoder posteriors and text features, so its training runs no frozen encoder.

    python -m ldm_vs_gan.precompute model=ldm out=/data/toy-pre
    python -m ldm_vs_gan.train model=ldm data=laion data.precomputed=true data.resolution=32 \\
        data.shards='/data/toy-pre/train-*.tar' data.heldout_shards='/data/toy-pre/heldout-*.tar'

The overrides are the training run's, composed as ``python -m ldm_vs_gan.train`` composes them:
its ``data`` is read and its ``clip`` and ``autoencoder`` are built as the LDM builds them
(``LDMFamily.build_components`` after ``seed_all(seed)``). The command prints the training command
that reads the shards. Own keys:

    out=DIR            a new folder for the shards and meta.json (required)
    batch_size=64      images per encoder call
    shard_size=10000   samples per shard file
    splits=train,heldout
    device=auto        auto (cuda when present) | cpu | cuda | cuda:N

Each split is read in file order, decoded as the loader decodes it, and written as
``<split>-NNNNNN.tar``: per sample the caption (``.txt``), the source's ``.json``, and the arrays
of ``ldm/precomputed.py`` as ``.npy`` (numpy, no pickle); held-out samples also keep their decoded
image (``.png``, for sample grids and evaluation). Corrupt samples are skipped and counted in
``meta.json``, written last. Decoding must be deterministic: a random crop or flip would be frozen
into the shards. Everything is written to ``DIR.tmp-<pid>`` and renamed to ``DIR`` when complete.
Exit status 0, or 2 with one line.
"""

from __future__ import annotations

import copy
import io
import json
import os
import shlex
import shutil
import sys
import time
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
import torch
from omegaconf import OmegaConf

from ldm_vs_gan.errors import UserError, bad_value


@dataclass
class Options:
    """The precompute's own ``key=value`` arguments (the others are Hydra overrides)."""

    out: str | None = None  # a new folder for the shards and meta.json (required)
    batch_size: int = 64  # images per encoder call
    shard_size: int = 10000  # samples per shard file
    splits: str = "train,heldout"  # comma-separated splits to write
    device: str = "auto"  # auto (cuda when present) | cpu | cuda | cuda:N

    def check(self, prefix: str) -> None:
        if not self.out:
            raise UserError("out=DIR is required: a new folder for the precomputed shards")
        for key in ("batch_size", "shard_size"):
            if getattr(self, key) < 1:
                raise bad_value(key, getattr(self, key), "an integer >= 1")
        for s in self.split_list():
            if s not in ("train", "heldout"):
                raise bad_value("splits", self.splits, ["train", "heldout", "train,heldout"])

    def split_list(self) -> list[str]:
        return [s.strip() for s in self.splits.split(",") if s.strip()]


def parse_args(argv: list[str]) -> tuple[Options, list[str]]:
    """(the own keys, the Hydra overrides) of the command line."""
    from ldm_vs_gan import schema

    own = {f.name for f in fields(Options)}
    mine = {a.split("=", 1)[0]: a.split("=", 1)[1] for a in argv if a.split("=", 1)[0] in own and "=" in a}
    rest = [a for a in argv if not ("=" in a and a.split("=", 1)[0] in own)]
    return schema.read(Options, mine, "precompute"), rest


def check_source(cfg):
    """The typed ``data`` node, once the run is one whose encodings can be precomputed."""
    from hydra.utils import get_class

    from ldm_vs_gan import data
    from ldm_vs_gan.ldm.family import LDMFamily

    target = cfg.model.get("_target_")
    if not target or not issubclass(get_class(target), LDMFamily):
        raise bad_value("model", cfg.model.get("name"), ["ldm (precompute writes the LDM's encodings)"])
    data.check_config(cfg.data)
    c = data.config.read(cfg.data)
    if getattr(c, "precomputed", False):
        raise bad_value("data.precomputed", True, ["false (these shards are precomputed already)"])
    if c.crop == "random":
        raise bad_value("data.crop", "random", ["center (one random crop would be frozen into the shards)"])
    if c.hflip:
        raise bad_value("data.hflip", True, ["false (one random flip would be frozen into the shards)"])
    return c


def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        return torch.device(name)
    except RuntimeError:
        raise bad_value("device", name, ["auto", "cpu", "cuda", "cuda:N"]) from None


def build(cfg, device: torch.device):
    """The frozen CLIP and autoencoder of the run, with its random weights if they are random:
    seeded as the trainer seeds before ``from_config``, the caller's RNG left as it was."""
    from ldm_vs_gan import plugins
    from ldm_vs_gan.ldm.family import LDMFamily
    from ldm_vs_gan.training.checkpoint import isolated_rng, seed_all

    prep = copy.deepcopy(cfg)
    prep.trainer.eval_every = 0  # no quick evaluation here: the toy judge is not needed
    plugins.prepare(prep, "train")  # first-use data and components (the toy world and stages)
    with isolated_rng():
        seed_all(int(cfg.seed))
        clip, ae = LDMFamily.build_components(cfg)
    return clip.to(device), ae.to(device)


@torch.no_grad()
def encode(batch, clip, ae, device: torch.device) -> dict[str, np.ndarray]:
    """The arrays of one batch (``ldm/precomputed.py``): scaled posterior and text features."""
    from ldm_vs_gan.ldm import precomputed

    mean, std = ae.posterior(batch.images.to(device))
    f = clip.encode_text(list(batch.captions))
    tensors = [mean.float(), std.float(), f.tokens.float(), f.mask, f.pooled.float()]
    return {k: t.cpu().numpy() for k, t in zip((*precomputed.LATENT, *precomputed.TEXT), tensors)}


def _npy(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(a), allow_pickle=False)
    return buf.getvalue()


def _png(image_chw: torch.Tensor) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(image_chw.permute(1, 2, 0).contiguous().numpy()).save(buf, format="PNG")
    return buf.getvalue()


def _read(source, opts, indices, skipped: dict[str, int]) -> list[tuple[dict, bytes | None]]:
    """(decoded sample, its raw ``.json``) of each readable index; the others counted."""
    from ldm_vs_gan.data.decode import Skip, decode_sample

    out = []
    for i in indices:
        try:
            raw = source.read(i)
            out.append((decode_sample(raw, opts), raw.get("json")))
        except Skip as e:
            skipped[e.args[0]] = skipped.get(e.args[0], 0) + 1
        except OSError:
            skipped["tar_error"] = skipped.get("tar_error", 0) + 1
    return out


def _record(split: str, s: dict, raw_json: bytes | None, arrays: dict, keys: set) -> dict:
    """One sample of the shards: caption, the source's .json, the arrays; held-out: the image."""
    if s["key"] in keys:  # the writer would keep only the first: never lose one silently
        raise UserError(f"sample key {s['key']!r} occurs twice in the {split} split of data")
    keys.add(s["key"])
    rec = {"__key__": s["key"], "txt": s["caption"], **{f"{k}.npy": _npy(a) for k, a in arrays.items()}}
    if raw_json is not None:
        rec["json"] = raw_json
    if split == "heldout":  # sample grids and evaluation need the real images
        rec["png"] = _png(s["image"])
    return rec


def write_split(split: str, c, clip, ae, out: Path, o: Options, device) -> dict:
    """``<split>-NNNNNN.tar`` in ``out``: every readable sample of the split, in file order."""
    from ldm_vs_gan import data
    from ldm_vs_gan.data.decode import DecodeOptions
    from ldm_vs_gan.data.indexed import collate
    from ldm_vs_gan.data.shards import ShardWriter

    source = data.build_source(c, split)
    if source is None:
        raise bad_value("data.mode", "stream", ["indexed (precompute reads local shards)"])
    opts, t0 = DecodeOptions.from_config(c), time.perf_counter()
    said = t0
    skipped, keys = dict(getattr(source, "damaged", {})), set()
    with ShardWriter(str(out / f"{split}-%06d.tar"), maxcount=o.shard_size) as w:
        for start in range(0, len(source), o.batch_size):
            samples = _read(source, opts, range(start, min(start + o.batch_size, len(source))), skipped)
            if samples:
                arrays = encode(collate([s for s, _ in samples], {}, c.resolution), clip, ae, device)
                for j, (s, raw_json) in enumerate(samples):
                    w.write(_record(split, s, raw_json, {k: a[j] for k, a in arrays.items()}, keys))
            done = min(start + o.batch_size, len(source))
            if time.perf_counter() - said > 10 or done == len(source):  # a line every 10 s
                print(f"precompute: {split} {done}/{len(source)} read", file=sys.stderr, flush=True)
                said = time.perf_counter()
    seconds = time.perf_counter() - t0
    names = [Path(p).name for p in w.paths]
    return {"n": len(keys), "skipped": skipped, "shards": names, "seconds": round(seconds, 3)}


def meta(cfg, c, clip, ae, splits: dict, overrides: list[str]) -> dict:
    """What ``meta.json`` records: the identity the training run is checked against, and what
    made the shards (configs, weight provenance, data, counts, cost)."""
    from ldm_vs_gan.ldm import precomputed

    plain = lambda node: OmegaConf.to_container(node, resolve=True)  # noqa: E731
    return {
        "format": precomputed.FORMAT,
        "identity": precomputed.identity(clip, ae, c.resolution),
        "clip": {"config": plain(cfg.clip), "info": clip.info},
        "autoencoder": {"config": plain(cfg.autoencoder), "info": ae.info},
        "data": plain(cfg.data),
        "seed": int(cfg.seed),
        "overrides": list(overrides),
        "splits": splits,
    }


def train_command(cfg, c, clip, ae, out: Path, overrides: list[str], splits) -> str:
    """The training command that reads the shards: the run's overrides without its data, and a
    component built from a stage run (the toy world's) named by that run."""
    keep = [o for o in overrides if o.split("=", 1)[0].lstrip("+~").split(".")[0] != "data"]
    for node, comp in (("clip", clip), ("autoencoder", ae)):
        if comp.info.get("source") == "run" and cfg[node].get("source") != "run":
            keep += [f"{node}.source=run", f"{node}.path={comp.info['path']}"]
    data = ["data=laion", "data.precomputed=true", f"data.resolution={c.resolution}"]
    data.append(f"data.shards={out / 'train-*.tar'}")
    if "heldout" in splits:
        data.append(f"data.heldout_shards={out / 'heldout-*.tar'}")
    return shlex.join(["python", "-m", "ldm_vs_gan.train", *keep, *data])


def run(argv: list[str]) -> Path:
    """Write the shards and meta.json of the run that ``argv`` composes; returns the folder."""
    from ldm_vs_gan.train import compose_config

    o, overrides = parse_args(argv)
    return precompute(compose_config(overrides, job_name="precompute"), o, overrides)


def precompute(cfg, o: Options, overrides: list[str] = ()) -> Path:
    """Write the shards and meta.json of the composed run ``cfg`` into ``o.out``."""
    from ldm_vs_gan.training.checkpoint import atomic_write_bytes

    o.check("precompute")
    c = check_source(cfg)
    out = Path(o.out).expanduser().absolute()
    if out.exists():
        raise UserError(f"out={out} exists: precompute writes a new folder (remove it or choose another)")
    device = _device(o.device)
    clip, ae = build(cfg, device)
    tmp = out.with_name(f"{out.name}.tmp-{os.getpid()}")
    tmp.mkdir(parents=True)
    try:
        splits = {s: write_split(s, c, clip, ae, tmp, o, device) for s in o.split_list()}
        info = meta(cfg, c, clip, ae, splits, list(overrides))
        info["train_command"] = train_command(cfg, c, clip, ae, out, list(overrides), splits)
        atomic_write_bytes(tmp / "meta.json", (json.dumps(info, indent=1, default=str) + "\n").encode())
        os.replace(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    for s, st in splits.items():
        per = st["seconds"] / max(st["n"], 1) * 1e3
        print(
            f"precompute: {s}: {st['n']} samples, {per:.2f} ms/image, skipped {st['skipped']}",
            file=sys.stderr,
        )
    print(f"precompute: wrote {out}; train from it with:\n{info['train_command']}", file=sys.stderr)
    return out


def main(argv: list[str] | None = None) -> None:
    try:
        run(sys.argv[1:] if argv is None else argv)
    except UserError as ex:
        print(f"error: {ex}", file=sys.stderr, flush=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
