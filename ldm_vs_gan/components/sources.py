"""Where a frozen component's weights come from: one function per ``source`` value.

CLIP (``clip.source``): ``pretrained`` (open_clip name + tag, from the local HF/open_clip cache),
``file`` (a weights file + architecture), ``local-dir`` (open_clip's ``local-dir:`` folder),
``run`` (a run directory of the ``model=clip`` stage), ``random`` (the architecture with random
weights: tests, parameter counts), or a plug-in's (``ldm_vs_gan.plugins``; the toy world's
``toy``: its cached CLIP stage).

Autoencoder (``autoencoder.source``): ``hub`` (a diffusers repo id, from the local HF cache),
``local-dir`` (a ``from_pretrained`` folder), ``run`` (a ``model=vae`` stage run), ``random``,
or a plug-in's (``toy``).

Every weight is located on disk here before a library is called (``weights.py``), so an absent
one is a single fast :class:`MissingWeightsError` naming the config key; :func:`check_available`
does only that locating, for all of a family's components before any is built. Files we read ourselves are read once, hashed, then parsed: the recorded
``sha256`` is that of the bytes loaded, and a run's manifest hash is checked.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from ldm_vs_gan import plugins
from ldm_vs_gan.components.autoencoder import FrozenAutoencoder, build_autoencoder_kl
from ldm_vs_gan.components.clip import FrozenCLIP, bpe_tokenizer, build_open_clip
from ldm_vs_gan.components.config import AE_SOURCES, CLIP_SOURCES, read_autoencoder, read_clip
from ldm_vs_gan.components.weights import (
    downloads_allowed,
    existing_path,
    hf_cached,
    load_state_dict_file,
    one_line,
    read_safetensors,
    read_torch,
    reading,
)
from ldm_vs_gan.errors import MissingWeightsError, bad_value

__all__ = ["AE_SOURCES", "CLIP_SOURCES"]  # re-exported: their home is components/config.py


def _plain(x):
    """OmegaConf node -> plain Python containers."""
    try:
        from omegaconf import OmegaConf

        if OmegaConf.is_config(x):
            return OmegaConf.to_container(x, resolve=True)
    except ImportError:  # pragma: no cover
        pass
    return x


def _resolution(data_cfg, default: int = 32) -> int:
    """``data.resolution`` of a data node (typed, DictConfig or a run dir's plain dict)."""
    if data_cfg is None:
        return default
    res = data_cfg.get("resolution") if hasattr(data_cfg, "get") else getattr(data_cfg, "resolution", None)
    return int(res or default)


# ============================================================================ CLIP


def clip_arch(arch: dict, resolution: int) -> dict:
    """open_clip model-config dict from ``clip.arch`` / ``model.arch``: ``vision_cfg.image_size``
    null -> the data resolution; ``vision_cfg.patch_size`` null -> image_size // ``grid``
    (``grid``: our key, patches per side, default 8)."""
    arch = json.loads(json.dumps(_plain(arch)))  # deep copy, plain
    v = arch["vision_cfg"]
    grid = int(v.pop("grid", 8) or 8)
    v["image_size"] = int(v.get("image_size") or resolution)
    if not v.get("patch_size"):
        if v["image_size"] % grid:
            raise bad_value("clip.arch.vision_cfg.grid", grid, f"a divisor of image_size={v['image_size']}")
        v["patch_size"] = v["image_size"] // grid
    return arch


def _clip_from_arch(arch: dict, context_length=None) -> tuple:
    model = build_open_clip(arch)
    ctx = int(context_length or arch["text_cfg"].get("context_length", 77))
    return model, bpe_tokenizer(ctx)


def _clip_named(name: str, context_length=None, quick_gelu: bool = False):
    import open_clip

    if open_clip.get_model_config(name) is None:
        raise bad_value(
            "clip.model",
            name,
            "an open_clip model name (open_clip.list_models()), or clip.model=null with clip.arch set",
        )
    kw = {"force_quick_gelu": bool(quick_gelu)}
    if context_length:
        kw["force_context_length"] = int(context_length)
    model = open_clip.create_model(name, pretrained=None, **kw)
    tok = open_clip.get_tokenizer(name, context_length=int(context_length or model.context_length))
    return model, tok


def _clip_architecture(cfg, data_cfg):
    """(model, tokenizer) with random weights from ``clip.model`` (open_clip name) or ``clip.arch``."""
    name, arch = cfg.model, cfg.arch
    if name:
        return _clip_named(name, cfg.context_length, bool(cfg.quick_gelu or False))
    if arch:
        return _clip_from_arch(clip_arch(arch, _resolution(data_cfg)), cfg.context_length)
    raise bad_value("clip.model", name, "an open_clip model name, or set clip.arch")


def _pretrained_cfg(name: str, tag: str, cfg) -> dict:
    """open_clip's pretrained entry for (name, tag); ``clip.hf_repo`` (set in the shipped configs)
    short-cuts it, so a missing weight is reported without importing open_clip (seconds)."""
    if cfg.hf_repo:
        return {
            "hf_hub": str(cfg.hf_repo).rstrip("/") + "/",
            "quick_gelu": bool(cfg.quick_gelu or False),
        }
    from open_clip.pretrained import get_pretrained_cfg, list_pretrained_tags_by_model

    pcfg = get_pretrained_cfg(name, tag)
    if not pcfg:
        raise bad_value(
            "clip.pretrained", tag, list_pretrained_tags_by_model(name) or f"(no tags for {name})"
        )
    return pcfg


def _pretrained_file(pcfg: dict, cache_dir) -> str | None:
    """Local file of an open_clip pretrained entry: the HF cache, then open_clip's URL cache."""
    hub = pcfg.get("hf_hub", "")
    if hub:
        repo, fname = os.path.split(hub)
        names = [fname] if fname else ["open_clip_model.safetensors", "open_clip_pytorch_model.bin"]
        if fname.endswith((".bin", ".pth", ".pt")):
            names.insert(0, os.path.splitext(fname)[0] + ".safetensors")
        for n in names:
            hit = hf_cached(repo, n, cache_dir)
            if hit:
                return hit
    url = pcfg.get("url", "")
    if url:
        p = Path(cache_dir or "~/.cache/clip").expanduser() / os.path.basename(url)
        if p.is_file():
            return str(p)
    return None


def _clip_pretrained_path(cfg) -> tuple[dict, str]:
    """(open_clip pretrained entry, local weights file, or the tag when a download is allowed)."""
    name, tag = cfg.model, cfg.pretrained
    if not name or not tag:
        raise bad_value(
            "clip.pretrained" if name else "clip.model",
            tag if name else name,
            "an open_clip model name and pretrained tag (e.g. clip.model=ViT-B-32 "
            "clip.pretrained=laion2b_s34b_b79k)",
        )
    pcfg = _pretrained_cfg(name, tag, cfg)
    path = _pretrained_file(pcfg, cfg.cache_dir)
    if path is None:
        if not downloads_allowed(bool(cfg.allow_download)):
            where = pcfg.get("hf_hub") or pcfg.get("url")
            raise MissingWeightsError(
                f"clip.pretrained={tag!r} (clip.model={name!r}): weights not on this machine "
                f"(not in the Hugging Face cache: {where}) and downloads are off. Either run once on a "
                f"machine with internet `python -c \"import open_clip; open_clip.create_model('{name}', "
                f"pretrained='{tag}')\"` and copy ~/.cache/huggingface here, or set clip.source=file "
                f"clip.path=/path/to/open_clip_model.safetensors, or allow downloading with "
                f"clip.allow_download=true and HF_HUB_OFFLINE=0."
            )
        path = tag  # let open_clip download (allowed)
    return pcfg, path


def _clip_pretrained(cfg, data_cfg):
    name, tag = cfg.model, cfg.pretrained
    cache = cfg.cache_dir
    pcfg, path = _clip_pretrained_path(cfg)
    import open_clip
    from open_clip.pretrained import get_pretrained_cfg

    # open_clip's own entry (when it has one) knows the tag's mean/std (e.g. ViT-L-14 laion2b: 0.5).
    pcfg = {**pcfg, **get_pretrained_cfg(name, tag)}
    quick = cfg.quick_gelu
    kw = {"force_quick_gelu": bool(pcfg.get("quick_gelu", False) if quick is None else quick)}
    if cfg.context_length:
        kw["force_context_length"] = int(cfg.context_length)
    try:
        model = open_clip.create_model(name, pretrained=path, cache_dir=cache, **kw)
    except Exception as e:  # a download that failed, a corrupt file
        raise MissingWeightsError(
            f"clip.pretrained={tag!r} (clip.model={name!r}) could not be loaded from {path}: {one_line(e, 200)}"
        ) from None
    tok = open_clip.get_tokenizer(name, context_length=int(cfg.context_length or model.context_length))
    info = {"source": "pretrained", "model": name, "pretrained": tag, "path": str(path)}
    return FrozenCLIP(
        model,
        tok,
        info=info,
        mean=pcfg.get("mean", (0.48145466, 0.4578275, 0.40821073)),
        std=pcfg.get("std", (0.26862954, 0.26130258, 0.27577711)),
    )


def _clip_file_path(cfg) -> Path:
    return existing_path(
        cfg.path,
        "clip.path",
        "an open_clip state-dict file (.safetensors, .pt, .bin)",
        "Set clip.model (open_clip name) or clip.arch to its architecture.",
    )


def _clip_file(cfg, data_cfg):
    path = _clip_file_path(cfg)
    sd, sha256 = load_state_dict_file(path, "clip.path")
    model, tok = _clip_architecture(cfg, data_cfg)
    _load_strict(model, sd, "clip.path", path)
    return FrozenCLIP(
        model,
        tok,
        info={"source": "file", "path": str(path), "sha256": sha256, "model": cfg.model},
    )


def _clip_local_dir_path(cfg) -> Path:
    how = (
        "A folder with open_clip_config.json and open_clip_model.safetensors (or "
        "open_clip_pytorch_model.bin), e.g. a snapshot of an open_clip hub repo."
    )
    path = existing_path(cfg.path, "clip.path", "a local open_clip folder", how)
    if not (path / "open_clip_config.json").is_file():
        raise MissingWeightsError(f"clip.path={str(path)!r} has no open_clip_config.json. {how}")
    return path


def _clip_local_dir(cfg, data_cfg):
    import open_clip

    path = _clip_local_dir_path(cfg)
    with reading(path, "could not be loaded as an open_clip folder", "clip.path"):
        model = open_clip.create_model(f"local-dir:{path}")
        tok = open_clip.get_tokenizer(f"local-dir:{path}")
    return FrozenCLIP(model, tok, info={"source": "local-dir", "path": str(path)})


def clip_from_run(run_dir, key: str = "clip.path") -> FrozenCLIP:
    """The CLIP of a ``model=clip`` stage run: architecture from its ``config.yaml``, weights from
    ``weights/clip.safetensors`` (falls back to the checkpoint's network state)."""
    run = _stage_run(run_dir, "clip", key)
    rcfg = _run_config(run, key)
    arch = clip_arch(rcfg["model"].get("arch"), _resolution(rcfg.get("data")))
    wfile, sd, sha256 = _run_weights(run, "clip", key)
    model, tok = _clip_from_arch(arch)
    _load_strict(model, sd, key, wfile)
    info = {"source": "run", "path": str(run), "weights": str(wfile), "sha256": sha256, "arch": arch}
    return FrozenCLIP(model, tok, info=info)


def _clip_run(cfg, data_cfg):
    return clip_from_run(cfg.path)


def _clip_random(cfg, data_cfg):
    model, tok = _clip_architecture(cfg, data_cfg)
    return FrozenCLIP(model, tok, info={"source": "random", "model": cfg.model})


def build_clip(clip_cfg, *, data_cfg=None) -> FrozenCLIP:
    """The frozen CLIP of ``clip_cfg`` (the ``clip`` node); ``data_cfg`` gives the resolution of
    built architectures and keys the toy CLIP."""
    clip_cfg = read_clip(clip_cfg)
    src = clip_cfg.source
    fn = {
        "pretrained": _clip_pretrained,
        "file": _clip_file,
        "local-dir": _clip_local_dir,
        "run": _clip_run,
        "random": _clip_random,
    }.get(src)
    if fn is None:
        fn = plugins.get("clip", src, "clip.source", CLIP_SOURCES).build
    clip = fn(clip_cfg, data_cfg)
    layer = clip_cfg.token_layer
    try:
        clip.check_token_layer(layer)
    except ValueError:
        raise bad_value(
            "clip.token_layer", layer, f"an integer in [{-(clip.text_layers + 1)}, {clip.text_layers}]"
        ) from None
    clip.token_layer = layer
    return clip


# ============================================================================ run dirs


_STAGE_HOW = {
    "clip": "a run directory of the CLIP stage (python -m ldm_vs_gan.train model=clip)",
    "vae": "a run directory of the VAE stage (python -m ldm_vs_gan.train model=vae)",
}


def _stage_run(run_dir, net: str, key: str) -> Path:
    """The run dir of a ``model=<net>`` stage, checked for its config and weights (not read)."""
    how = f"Train one with `python -m ldm_vs_gan.train model={net} run_dir=...`."
    run = existing_path(run_dir, key, _STAGE_HOW[net], how)
    if not (run / "config.yaml").is_file():
        raise MissingWeightsError(f"{key}={str(run)!r} is not a run directory (no config.yaml).")
    if not any((run / f).is_file() for f in (f"weights/{net}.safetensors", "checkpoints/last.pt")):
        raise MissingWeightsError(
            f"{key}={str(run)!r} has no weights/{net}.safetensors (is the run finished?)."
        )
    return run


def _run_config(run: Path, key: str) -> dict:
    from omegaconf import OmegaConf

    with reading(run / "config.yaml", "is not a readable run config", key):
        return OmegaConf.to_container(OmegaConf.load(run / "config.yaml"), resolve=False)


def _recorded_sha256(weights_dir: Path, net: str) -> str | None:
    """The sha256 the run's ``manifest.json`` records for ``net`` (None without a manifest)."""
    m = weights_dir / "manifest.json"
    if not m.is_file():
        return None
    with reading(m, "is not a readable weights manifest"):
        return json.loads(m.read_text())["networks"].get(net, {}).get("sha256")


def _run_weights(run: Path, net: str, key: str):
    """(file, state dict, sha256 of the bytes read) of network ``net`` in a run:
    ``weights/<net>.safetensors`` (checked against the manifest), else ``checkpoints/last.pt``."""
    w = run / "weights" / f"{net}.safetensors"
    if w.is_file():
        return w, *read_safetensors(w, _recorded_sha256(w.parent, net), key)
    ck = run / "checkpoints" / "last.pt"
    if ck.is_file():
        state, sha256 = read_torch(ck, key)
        for k in ("networks", "nets", "model"):
            if isinstance(state, dict) and isinstance(state.get(k), dict) and net in state[k]:
                return ck, state[k][net], sha256
    raise MissingWeightsError(f"{key}={str(run)!r} has no weights/{net}.safetensors (is the run finished?).")


def _load_strict(model, sd, key, path) -> None:
    missing, unexpected = model.load_state_dict(sd, strict=False)
    if missing or unexpected:
        raise MissingWeightsError(
            f"{key}={str(path)!r} does not match the architecture: missing {list(missing)[:4]}, "
            f"unexpected {list(unexpected)[:4]} (check clip.model / clip.arch / autoencoder.arch)."
        )


# ============================================================================ autoencoder


def _vae_how(repo: str, sub) -> str:
    s = f", subfolder='{sub}'" if sub else ""
    return (
        f'Either run once on a machine with internet `python -c "from diffusers import AutoencoderKL; '
        f"AutoencoderKL.from_pretrained('{repo}'{s})\"` and copy ~/.cache/huggingface here, or "
        f"save it with .save_pretrained(DIR) and set autoencoder.source=local-dir autoencoder.path=DIR, "
        f"or allow downloading with autoencoder.allow_download=true and HF_HUB_OFFLINE=0."
    )


def _ae_hub_local(cfg) -> bool:
    """True when the repo's config and weights are in the HF cache; False when a download is
    allowed; else the one-line error."""
    repo, sub = cfg.repo, cfg.subfolder
    if not repo:
        raise bad_value("autoencoder.repo", repo, "a diffusers hub id, e.g. stabilityai/sd-vae-ft-mse")
    cache = cfg.cache_dir
    pre = f"{sub}/" if sub else ""
    have_cfg = hf_cached(repo, pre + "config.json", cache)
    have_w = any(
        hf_cached(repo, pre + n, cache)
        for n in ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.bin")
    )
    local_only = bool(have_cfg and have_w)
    if not local_only and not downloads_allowed(bool(cfg.allow_download)):
        raise MissingWeightsError(
            f"autoencoder.repo={repo!r}: weights not on this machine (not in the "
            f"Hugging Face cache) and downloads are off. {_vae_how(repo, sub)}"
        )
    return local_only


def _ae_hub(cfg, data_cfg):
    repo, sub, cache = cfg.repo, cfg.subfolder, cfg.cache_dir
    local_only = _ae_hub_local(cfg)
    from diffusers import AutoencoderKL  # only now: importing diffusers alone takes seconds

    try:
        vae = AutoencoderKL.from_pretrained(repo, subfolder=sub, cache_dir=cache, local_files_only=local_only)
    except Exception as e:
        raise MissingWeightsError(
            f"autoencoder.repo={repo!r} could not be loaded: {one_line(e, 200)}"
        ) from None
    return FrozenAutoencoder(
        vae,
        scaling_factor=cfg.scaling_factor,
        latent=cfg.latent,
        info={"source": "hub", "repo": repo, "subfolder": sub},
    )


def _ae_local_folder(cfg) -> Path:
    how = "A folder written by AutoencoderKL.save_pretrained (config.json + diffusion_pytorch_model.safetensors)."
    path = existing_path(cfg.path, "autoencoder.path", "a local AutoencoderKL folder", how)
    sub = cfg.subfolder
    folder = path / sub if sub else path
    if not (folder / "config.json").is_file() or not any(
        (folder / n).is_file() for n in ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.bin")
    ):
        raise MissingWeightsError(
            f"autoencoder.path={str(folder)!r} lacks config.json or "
            f"diffusion_pytorch_model.safetensors. {how}"
        )
    return folder


def _ae_local_dir(cfg, data_cfg):
    from diffusers import AutoencoderKL

    folder = _ae_local_folder(cfg)
    with reading(folder, "could not be loaded as an AutoencoderKL folder", "autoencoder.path"):
        vae = AutoencoderKL.from_pretrained(str(folder), local_files_only=True)
    return FrozenAutoencoder(
        vae,
        scaling_factor=cfg.scaling_factor,
        latent=cfg.latent,
        info={"source": "local-dir", "path": str(folder)},
    )


def autoencoder_from_run(run_dir, key: str = "autoencoder.path", latent: str = "mode") -> FrozenAutoencoder:
    """The VAE of a ``model=vae`` stage run: architecture from ``config.yaml``, weights (and the
    measured ``scaling_factor`` buffer) from ``weights/vae.safetensors``."""
    run = _stage_run(run_dir, "vae", key)
    rcfg = _run_config(run, key)
    res = _resolution(rcfg.get("data"))
    wfile, sd, sha256 = _run_weights(run, "vae", key)
    sd = dict(sd)
    scale = sd.pop("scaling_factor", None)
    sd = {k[len("vae.") :] if k.startswith("vae.") else k: v for k, v in sd.items()}
    vae = build_autoencoder_kl(rcfg["model"].get("arch"), res)
    _load_strict(vae, sd, key, wfile)
    scale = float(scale) if scale is not None and float(scale) > 0 else 1.0
    return FrozenAutoencoder(
        vae,
        scaling_factor=scale,
        latent=latent,
        info={"source": "run", "path": str(run), "weights": str(wfile), "sha256": sha256},
    )


def _ae_run(cfg, data_cfg):
    return autoencoder_from_run(cfg.path, latent=cfg.latent)


def _ae_random(cfg, data_cfg):
    arch = cfg.arch
    if not arch:
        raise bad_value("autoencoder.arch", arch, "an architecture dict (channels, layers_per_block, ...)")
    vae = build_autoencoder_kl(
        _plain(arch), _resolution(data_cfg), scaling_factor=float(cfg.scaling_factor or 1.0)
    )
    return FrozenAutoencoder(vae, latent=cfg.latent, info={"source": "random"})


def build_autoencoder(ae_cfg, *, data_cfg=None) -> FrozenAutoencoder:
    """The frozen AutoencoderKL of ``ae_cfg`` (the ``autoencoder`` node)."""
    ae_cfg = read_autoencoder(ae_cfg)
    src = ae_cfg.source
    fn = {
        "hub": _ae_hub,
        "local-dir": _ae_local_dir,
        "run": _ae_run,
        "random": _ae_random,
    }.get(src)
    if fn is None:
        fn = plugins.get("autoencoder", src, "autoencoder.source", AE_SOURCES).build
    return fn(ae_cfg, data_cfg)


# ============================================================================ availability

# what each built-in source needs on this machine (random: nothing; plug-ins: their ``check``)
_CLIP_CHECKS = {
    "pretrained": _clip_pretrained_path,
    "file": _clip_file_path,
    "local-dir": _clip_local_dir_path,
    "run": lambda cfg: _stage_run(cfg.path, "clip", "clip.path"),
}
_AE_CHECKS = {
    "hub": _ae_hub_local,
    "local-dir": _ae_local_folder,
    "run": lambda cfg: _stage_run(cfg.path, "vae", "autoencoder.path"),
}


def check_available(*, clip=None, autoencoder=None, data_cfg=None) -> None:
    """Raise the error the build would raise for a weight that is not on this machine, without
    building anything: a family calls it first, so a missing pretrained VAE is reported before
    anything is built."""
    for kind, node, read, checks in (
        ("clip", clip, read_clip, _CLIP_CHECKS),
        ("autoencoder", autoencoder, read_autoencoder, _AE_CHECKS),
    ):
        if node is None:
            continue
        node = read(node)
        src = node.source
        if src in checks:
            checks[src](node)
        elif plugins.find(kind, src) is not None:
            plugins.find(kind, src).check(node, data_cfg)
