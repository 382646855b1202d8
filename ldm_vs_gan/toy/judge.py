"""The toy judge (docs/ARCHITECTURE.md "The toy world"): a small CNN that reads a toy image back into its
canonical attributes. It is to the toy world what Inception is to natural images: its penultimate
layer is the feature space of FID-toy / KID-toy, and its predictions give *prompt fidelity*, the
share of generated images whose judged attributes match their prompt.

Trained once by the toy room's preparer on the world's train split, evaluated on the held-out
split, and cached in ``<cache>/toy/judge-<key>/`` (key: the world's parameters + the judge's), with
its held-out accuracy per attribute and its training time in ``meta.json``. Weights are
safetensors.

Outputs (heads on a shared feature vector): object count (1|2), relation (left of|above), and two
canonical object *slots* (slot 0 = the only, or the left/upper, object) with shape, colour, size.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn

from ldm_vs_gan.errors import UserError, bad_value
from ldm_vs_gan.paths import cache_dir, params_key, sha256_file
from ldm_vs_gan.toy import config, world

JUDGE_VERSION = 2
_FIELDS = (("shape", world.SHAPES), ("color", world.COLORS), ("size", world.SIZES))


def judge_params(data_cfg) -> dict:
    c = config.read(data_cfg)
    j = c.judge
    return {
        "version": JUDGE_VERSION,
        "world": world.world_params(c),
        "epochs": int(j.epochs),
        "batch_size": int(j.batch_size),
        "lr": float(j.lr),
        "width": int(j.width),
        "seed": int(j.seed),
    }


class JudgeNet(nn.Module):
    """(B,3,R,R) in [-1,1] -> features (B, 8w) and a dict of logits.

    Four conv layers down to an 8x8 map (R/4), then max-pooling over the whole map and over its
    left, right, top and bottom halves: translation-invariant "what" with the coarse "where" that
    the canonical slots need (slot 0 is the left or upper object), so it learns in one or two
    passes over the world instead of memorising positions.
    """

    def __init__(self, resolution: int = 32, width: int = 16):
        super().__init__()
        w = width

        def block(ci, co):
            return [nn.Conv2d(ci, co, 3, padding=1), nn.BatchNorm2d(co), nn.ReLU(inplace=True)]

        pools = [nn.MaxPool2d(2)] * (2 if resolution == 32 else 3)
        self.body = nn.Sequential(
            *block(3, w), *pools[:-1], *block(w, 2 * w), pools[-1], *block(2 * w, 4 * w), *block(4 * w, 4 * w)
        )  # (B, 4w, 8, 8)
        self.feat = nn.Sequential(nn.Linear(5 * 4 * w, 8 * w), nn.ReLU(inplace=True))
        d = 8 * w
        self.heads = nn.ModuleDict({"count": nn.Linear(d, 2), "relation": nn.Linear(d, len(world.RELATIONS))})
        for slot in (0, 1):
            for f, vocab in _FIELDS:
                self.heads[f"{f}{slot}"] = nn.Linear(d, len(vocab))

    def forward(self, x: torch.Tensor):
        m = self.body(x)  # (B, C, h, w)
        h2, w2 = m.shape[2] // 2, m.shape[3] // 2
        pooled = [
            m.amax((2, 3)),
            m[..., :w2].amax((2, 3)),
            m[..., w2:].amax((2, 3)),
            m[:, :, :h2].amax((2, 3)),
            m[:, :, h2:].amax((2, 3)),
        ]  # 5 x (B, C)
        h = self.feat(torch.cat(pooled, 1))  # (B, 8w): the FID-toy feature space
        return h, {k: head(h) for k, head in self.heads.items()}


def encode_labels(attributes: list[dict]) -> dict[str, torch.Tensor]:
    """Canonical attributes -> integer targets per head (-1 = not applicable)."""
    n = len(attributes)
    out = {
        k: torch.full((n,), -1, dtype=torch.long)
        for k in ["count", "relation"] + [f"{f}{s}" for s in (0, 1) for f, _ in _FIELDS]
    }
    for i, a in enumerate(attributes):
        objs = a["objects"]
        out["count"][i] = len(objs) - 1
        if a.get("relation") is not None:
            out["relation"][i] = world.RELATIONS.index(a["relation"])
        for s, o in enumerate(objs[:2]):
            for f, vocab in _FIELDS:
                out[f"{f}{s}"][i] = vocab.index(o[f])
    return out


def load_split(data_cfg, split: str) -> tuple[torch.Tensor, list[dict]]:
    """All images of a toy split as uint8 (N,3,R,R) and their attributes (read from the shards)."""
    from ldm_vs_gan.data.decode import DecodeOptions, decode_sample
    from ldm_vs_gan.data.shards import ShardIndex

    index = ShardIndex(world.shard_paths(data_cfg, split), in_memory=True)
    opts = DecodeOptions(resolution=world.world_params(data_cfg)["resolution"])
    samples = [decode_sample(index.read(i), opts) for i in range(len(index))]
    return torch.stack([s["image"] for s in samples]), [s["attributes"] for s in samples]


class ToyJudge:
    """The judge: ``fidelity``, ``features``, ``predict``, ``heldout_accuracy``, ``sha256``, ``name``."""

    def __init__(self, net: JudgeNet, resolution: int, meta: dict, weights_path: Path):
        self.net = net.eval()
        self.resolution = resolution
        self.meta = meta
        self.heldout_accuracy: dict[str, float] = meta.get("heldout_accuracy", {})
        self.train_seconds: float = meta.get("train_seconds", float("nan"))
        self.sha256 = sha256_file(weights_path)
        self.name = f"toy-judge-{meta['key']}"
        self.feature_dim = net.feat[0].out_features

    def _prep(self, images_uint8) -> torch.Tensor:
        x = torch.as_tensor(np.asarray(images_uint8) if not torch.is_tensor(images_uint8) else images_uint8)
        if x.ndim == 4 and x.shape[-1] == 3 and x.shape[1] != 3:
            x = x.permute(0, 3, 1, 2)  # accept (N,H,W,3) too
        x = x.float().div(127.5).sub(1.0)
        if x.shape[-1] != self.resolution or x.shape[-2] != self.resolution:
            x = F.interpolate(
                x,
                size=(self.resolution, self.resolution),
                mode="bilinear",
                antialias=True,
                align_corners=False,
            )
        return x

    @torch.no_grad()
    def _run(self, images_uint8, chunk: int = 512):
        feats, logits = [], {}
        for i in range(0, len(images_uint8), chunk):
            h, lg = self.net(self._prep(images_uint8[i : i + chunk]))
            feats.append(h)
            for k, v in lg.items():
                logits.setdefault(k, []).append(v)
        if not feats:
            return torch.zeros(0, self.feature_dim), {}
        return torch.cat(feats), {k: torch.cat(v) for k, v in logits.items()}

    def features(self, images_uint8) -> torch.Tensor:
        """(N, D) float features (uint8 images (N,3,H,W), resized to the world's resolution)."""
        return self._run(images_uint8)[0]

    def predict(self, images_uint8) -> dict[str, torch.Tensor]:
        """Predicted class index per head (``count``: 0 = one object, 1 = two)."""
        return {k: v.argmax(1) for k, v in self._run(images_uint8)[1].items()}

    def fidelity(self, images_uint8, attributes: list) -> dict[str, float]:
        """Share of images whose judged attributes match their prompt.

        ``attributes``: canonical records (the sample ``.json``), or toy captions (parsed).
        Single-object prompts: ``single/{shape,color,size,count}``, ``single/overall`` (shape and
        colour right), ``single/strict`` (shape, colour, size right and one object seen).
        Two-object prompts: per-object ``two/{shape,color,size}`` (mean over both objects),
        ``two/relation``, ``two/overall`` (both objects' shape and colour and the relation right),
        ``two/strict`` (+ sizes and two objects seen). ``overall``: the ``overall`` criterion over
        all prompts. ``n_single``, ``n_two``: how many prompts of each kind.
        """
        attrs = [world.parse_caption(a) if isinstance(a, str) else a for a in attributes]
        if any(a is None for a in attrs):
            raise ValueError("fidelity: every prompt must be a toy attribute record or a toy-world caption")
        if len(attrs) != len(images_uint8):
            raise ValueError(f"fidelity: {len(images_uint8)} images but {len(attrs)} prompts")
        pred = self.predict(images_uint8)
        tgt = encode_labels(attrs)
        two = tgt["count"] == 1
        ok = {f"{f}{s}": pred[f"{f}{s}"] == tgt[f"{f}{s}"] for s in (0, 1) for f, _ in _FIELDS}
        count_ok = pred["count"] == tgt["count"]
        rel_ok = pred["relation"] == tgt["relation"]
        sc = [ok[f"shape{s}"] & ok[f"color{s}"] for s in (0, 1)]
        overall = torch.where(two, sc[0] & sc[1] & rel_ok, sc[0])
        out: dict[str, float] = {"n_single": float((~two).sum()), "n_two": float(two.sum())}

        def mean(mask, v):
            return float(v[mask].float().mean()) if mask.any() else float("nan")

        one = ~two
        for f, _ in _FIELDS:
            out[f"single/{f}"] = mean(one, ok[f"{f}0"])
            out[f"two/{f}"] = mean(two, (ok[f"{f}0"].float() + ok[f"{f}1"].float()) / 2)
        out["single/count"] = mean(one, count_ok)
        out["single/overall"] = mean(one, sc[0])
        out["single/strict"] = mean(one, sc[0] & ok["size0"] & count_ok)
        out["two/count"] = mean(two, count_ok)
        out["two/relation"] = mean(two, rel_ok)
        out["two/overall"] = mean(two, overall)
        out["two/strict"] = mean(two, overall & ok["size0"] & ok["size1"] & count_ok)
        out["overall"] = float(overall.float().mean()) if len(attrs) else float("nan")
        return out


# --------------------------------------------------------------------------- training and cache


def heldout_report(judge: ToyJudge, images: torch.Tensor, attrs: list[dict]) -> dict[str, float]:
    """Held-out accuracy per attribute on real images (objects pooled over slots)."""
    pred, tgt = judge.predict(images), encode_labels(attrs)
    out = {}
    for f, _ in _FIELDS:
        hits = torch.cat([(pred[f"{f}{s}"] == tgt[f"{f}{s}"])[tgt[f"{f}{s}"] >= 0] for s in (0, 1)])
        out[f] = float(hits.float().mean())
    out["count"] = float((pred["count"] == tgt["count"]).float().mean())
    m = tgt["relation"] >= 0
    out["relation"] = (
        float((pred["relation"] == tgt["relation"])[m].float().mean()) if m.any() else float("nan")
    )
    fid = judge.fidelity(images, attrs)
    out["single_overall"], out["two_overall"] = fid["single/overall"], fid["two/overall"]
    out["overall"] = fid["overall"]  # shape+colour (and relation) right, over all held-out prompts
    return out


def train_judge(data_cfg, verbose: bool = True) -> tuple[JudgeNet, dict]:
    # first use may come from inside an evaluation under no_grad / inference_mode: train anyway
    with torch.inference_mode(False), torch.enable_grad():
        return _train_judge(data_cfg, verbose)


def _train_judge(data_cfg, verbose: bool) -> tuple[JudgeNet, dict]:
    p = judge_params(data_cfg)
    images, attrs = load_split(data_cfg, "train")
    labels = encode_labels(attrs)
    g = torch.Generator().manual_seed(p["seed"])
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(p["seed"])
        net = JudgeNet(p["world"]["resolution"], p["width"])
    n = len(images)
    bs = min(p["batch_size"], n)  # a world smaller than one batch still trains (one batch per epoch)
    steps = p["epochs"] * (n // bs)
    opt = torch.optim.Adam(net.parameters(), lr=p["lr"])
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=p["lr"], total_steps=max(steps, 1))
    net.train()
    t0, c0, step = time.perf_counter(), time.process_time(), 0
    for epoch in range(p["epochs"]):
        perm = torch.randperm(n, generator=g)
        for i in range(n // bs):
            idx = perm[i * bs : (i + 1) * bs]
            x = images[idx].float().div_(127.5).sub_(1.0)
            _, logits = net(x)
            loss = sum(
                F.cross_entropy(logits[k], labels[k][idx], ignore_index=-1)
                for k in logits
                if (labels[k][idx] >= 0).any()
            )
            opt.zero_grad(set_to_none=True)
            loss.backward()  # sum of the heads' cross-entropies
            opt.step()
            sched.step()
            step += 1
        if verbose:
            print(
                f"[judge] epoch {epoch + 1}/{p['epochs']} loss {float(loss.detach()):.4f} "
                f"({time.perf_counter() - t0:.0f}s)",
                flush=True,
            )
    return net.eval(), {
        "train_seconds": round(time.perf_counter() - t0, 1),
        "train_cpu_seconds": round(time.process_time() - c0, 1),
        "train_images": steps * bs,
    }


def judge_dir(data_cfg) -> Path:
    return (
        cache_dir("toy", root=config.read(data_cfg).cache_dir) / f"judge-{params_key(judge_params(data_cfg))}"
    )


def _train_and_save(data_cfg, p: dict, final: Path, verbose: bool) -> None:
    if (final / "meta.json").exists():  # trained by another process while we waited
        return
    net, info = train_judge(data_cfg, verbose)
    tmp = final.with_name(f"{final.name}.tmp-{os.getpid()}-{time.time_ns()}")
    tmp.mkdir(parents=True)
    try:
        save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(tmp / "weights.safetensors"))
        meta = {"key": final.name.removeprefix("judge-"), "params": p, **info}
        judge = ToyJudge(net, p["world"]["resolution"], meta, tmp / "weights.safetensors")
        images, attrs = load_split(data_cfg, "heldout")
        meta["heldout_accuracy"] = heldout_report(judge, images, attrs)
        meta["heldout_n"] = len(attrs)
        (tmp / "meta.json").write_text(json.dumps(meta, indent=1))
        try:
            os.rename(tmp, final)
        except OSError:  # another process cached its judge first: use that one
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if verbose:
        print(
            f"[judge] trained in {info['train_seconds']}s; held-out accuracy {meta['heldout_accuracy']}",
            flush=True,
        )


_LOADED: dict[str, ToyJudge] = {}


def _check_toy(data_cfg) -> None:
    from ldm_vs_gan.data.config import name_of

    if name_of(data_cfg, "toy") != "toy":
        raise bad_value("data.name", name_of(data_cfg), ["toy (the judge exists for the toy world only)"])


def ensure_judge(data_cfg, verbose: bool = True) -> Path:
    """The judge's cache folder, training the judge first if it is not there (the preparer's
    job: ``toy/prepare.py``). One file lock per judge: DDP ranks and parallel runs train it once."""
    _check_toy(data_cfg)
    final = judge_dir(data_cfg)
    if not (final / "meta.json").exists():
        with world.file_lock(final.with_name(final.name + ".lock")):
            _train_and_save(data_cfg, judge_params(data_cfg), final, verbose)
    return final


def load_judge(data_cfg) -> ToyJudge:
    """The toy judge of this world, as trained by :func:`ensure_judge` (cached in memory)."""
    _check_toy(data_cfg)
    p = judge_params(data_cfg)
    final = judge_dir(data_cfg)
    if str(final) in _LOADED:
        return _LOADED[str(final)]
    if not (final / "meta.json").exists():
        raise UserError(
            f"the toy judge for this world is not trained yet ({final}): training and evaluation "
            "train it first; from Python call ldm_vs_gan.toy.judge.ensure_judge(cfg.data)"
        )
    meta = json.loads((final / "meta.json").read_text())
    net = JudgeNet(p["world"]["resolution"], p["width"])
    net.load_state_dict(load_file(str(final / "weights.safetensors")))
    judge = ToyJudge(net, p["world"]["resolution"], meta, final / "weights.safetensors")
    _LOADED[str(final)] = judge
    return judge
