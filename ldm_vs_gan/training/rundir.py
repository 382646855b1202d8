"""The run directory (everything about one run lives in it) and ``load_run``.

```
run_dir/config.yaml             the resolved config (written at start; rewritten on resume)
run_dir/checkpoints/last.pt     full training state; images_<N>.pt periodic copies (keep-last-k)
run_dir/weights/<net>.safetensors + manifest.json   sampling weights (EMA for the ema_network)
run_dir/metrics.jsonl  samples/  eval/
```
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

import torch
from hydra.utils import get_class
from omegaconf import DictConfig, OmegaConf

from ldm_vs_gan.errors import ConfigError, UserError
from ldm_vs_gan.training import checkpoint as ckpt

# Config nodes that define *what* is trained: a run dir cannot be resumed with other values.
# The budget, intervals, logger and precision may change between launches.
IDENTITY_KEYS = (
    "seed",
    "model",
    "data",
    "clip",
    "autoencoder",
    "trainer.batch_size",
    "trainer.accumulate",
    "trainer.warmup_images",
    "trainer.ema",
)
# Keys inside the identity nodes that change how data is read or where it is cached, never which
# samples arrive in which order (the stream is a function of seed and images seen).
NOT_IDENTITY = (
    "data.num_workers",
    "data.gen_workers",
    "data.in_memory",
    "data.cache_decoded",
    "data.cache_dir",
)
LOCK = ".lock"


class RunDir:
    def __init__(self, path: Path):
        self.path = Path(path)

    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoints"

    @property
    def last_checkpoint(self) -> Path:
        return self.checkpoints / ckpt.LAST

    @property
    def weights(self) -> Path:
        return self.path / "weights"

    @property
    def samples(self) -> Path:
        p = self.path / "samples"
        p.mkdir(parents=True, exist_ok=True)
        return p

    @property
    def eval(self) -> Path:
        p = self.path / "eval"
        p.mkdir(parents=True, exist_ok=True)
        return p

    def write_config(self, cfg: DictConfig) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        ckpt.atomic_write_bytes(self.path / "config.yaml", OmegaConf.to_yaml(cfg).encode())

    def lock(self) -> None:
        """Hold an exclusive OS lock on the run dir for the life of this process's run, so a
        second training on the same folder stops at once instead of interleaving checkpoints and
        metrics. The kernel drops the lock when the process dies, even by SIGKILL."""
        if self.path.exists() and not self.path.is_dir():
            raise UserError(f"run_dir={str(self.path)!r} is a file, not a folder; choose another run_dir")
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as ex:
            raise UserError(
                f"run_dir={str(self.path)!r} cannot be written ({ex.strerror}); choose another run_dir"
            ) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise UserError(
                f"run_dir={str(self.path)!r} is in use by another training (pid {holder}); wait for it "
                f"to finish or choose another run_dir"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._lock_fd = fd

    def unlock(self) -> None:
        fd = getattr(self, "_lock_fd", None)
        if fd is not None:
            os.close(fd)  # closing the descriptor releases the flock
            self._lock_fd = None

    def check_compatible(self, cfg: DictConfig, state: dict) -> None:
        """Resuming with a different model/data/seed would silently mix two runs: refuse, naming
        every key that differs with both values."""
        old = OmegaConf.create(state["config_yaml"])
        diffs = []
        for key in IDENTITY_KEYS:
            a, b = _flat(OmegaConf.select(old, key), key), _flat(OmegaConf.select(cfg, key), key)
            for k in sorted(set(a) | set(b)):
                if a.get(k, _ABSENT) != b.get(k, _ABSENT) and not k.startswith(NOT_IDENTITY):
                    diffs.append(f"{k}: {_short(a.get(k, _ABSENT))} -> {_short(b.get(k, _ABSENT))}")
        if diffs:
            more = f" (and {len(diffs) - 4} more)" if len(diffs) > 4 else ""
            raise ConfigError(
                f"run_dir={str(self.path)!r} holds a run with other settings: {'; '.join(diffs[:4])}{more}; "
                f"resume with the run's settings (its config.yaml) or choose a new run_dir"
            )

    def export_weights(self, family, nets, ema, images_seen: int, step: int) -> dict:
        tensors = {}
        entries = {}
        for name, m in nets.items():
            is_ema = ema is not None and name == family.ema_network
            tensors[name] = ema.ema_state_dict() if is_ema else m.state_dict()
            entries[name] = {"ema": is_ema, "params": sum(p.numel() for p in m.parameters())}
        manifest = {
            "family": type(family).__module__ + "." + type(family).__qualname__,
            "images_seen": images_seen,
            "step": step,
            "ema_network": family.ema_network,
            "checkpoint": str(self.last_checkpoint.relative_to(self.path)),
            "config": "config.yaml",
            "sampling_defaults": _plain(family.sampling_defaults()),
            "networks": entries,
        }
        return ckpt.export_weights(self.weights, tensors, manifest)


class _Absent:
    def __repr__(self) -> str:
        return "(absent)"


_ABSENT = _Absent()


def _flat(node, prefix: str) -> dict:
    """``{"model.optim.lr": 0.003, ...}``: the leaves of a config node under their full keys."""
    if isinstance(node, DictConfig):
        node = OmegaConf.to_container(node)
    if isinstance(node, dict):
        out = {}
        for k, v in node.items():
            out.update(_flat(v, f"{prefix}.{k}"))
        return out
    return {prefix: node}


def _short(v, n: int = 40) -> str:
    s = repr(v)
    return s if len(s) <= n else s[: n - 3] + "..."


def _plain(v):
    if isinstance(v, dict):
        return {str(k): _plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    return v if isinstance(v, (int, float, str, bool, type(None))) else str(v)


def init_weights_from(path, nets: dict, ema) -> None:
    """``init_from``: network weights (and the EMA, when present) of another run or checkpoint;
    optimizers, counters and data position start fresh."""
    p = Path(path)
    file = p / "checkpoints" / ckpt.LAST if p.is_dir() else p
    if file.exists():
        state = ckpt.load(file)
        for name, m in nets.items():
            if name in state["networks"]:
                m.load_state_dict(state["networks"][name])
        if ema is not None and state.get("ema"):
            ema.load_state_dict(state["ema"])
        elif ema is not None:
            ema.load_state_dict({"updates": 0, "params": dict(ema.module.named_parameters())})
        return
    if p.is_dir() and (p / "weights" / "manifest.json").exists():
        tensors, _ = ckpt.read_weights(p / "weights")
        for name, m in nets.items():
            if name in tensors:
                m.load_state_dict(tensors[name])
        if ema is not None:
            ema.load_state_dict({"updates": 0, "params": dict(ema.module.named_parameters())})
        return
    raise UserError(
        f"init_from={str(path)!r}: no checkpoints/last.pt or weights/manifest.json there; "
        f"give a run dir or a checkpoint file"
    )


def run_config(run_dir):
    """A run's ``config.yaml`` (one ``UserError`` naming it when it is absent or unreadable)."""
    from ldm_vs_gan.components.weights import reading

    path = Path(run_dir) / "config.yaml"
    if not path.exists():
        raise UserError(f"{str(Path(run_dir))!r} is not a run directory (no config.yaml)")
    with reading(path, "is not a readable run config"):
        return OmegaConf.load(path)


def load_run(run_dir, *, weights: str = "ema", device="cpu"):
    """Rebuild a run's family for sampling/evaluation (docs/CONTRACTS.md "Engine").

    weights: ``ema`` (``weights/``: the EMA of the sampling network, the others as trained) or
    ``raw`` (the live weights of ``checkpoints/last.pt``). Returns ``(family, cfg, info)`` with the
    family in eval mode on ``device``; ``info``: ``images_seen``, ``checkpoint``, ``weights``,
    ``weights_sha256`` (per network, of the bytes loaded, which must match the manifest; None for
    ``raw``). Damaged or unreadable files are one ``UserError`` naming the file.
    """
    from ldm_vs_gan.components.weights import reading

    rd = RunDir(Path(run_dir))
    if weights not in ("ema", "raw"):
        raise ConfigError(f"weights={weights!r} is not allowed; choose one of: ema, raw")
    if not (rd.path / "config.yaml").exists():
        raise UserError(f"{str(rd.path)!r} is not a run directory (no config.yaml)")
    # weights first: a damaged file is reported before the family builds
    if weights == "ema":
        if not (rd.weights / "manifest.json").exists():
            raise UserError(f"{str(rd.weights)!r} has no manifest.json: the run has not written weights yet")
        tensors, manifest = ckpt.read_weights(rd.weights)  # sha256 of the bytes read, checked
        files = {n: rd.weights / e["file"] for n, e in manifest["networks"].items()}
        info = {
            "images_seen": manifest["images_seen"],
            "checkpoint": str(rd.path / manifest["checkpoint"]),
            "weights": "ema" if manifest.get("ema_network") else "raw",
            "weights_sha256": {n: e["sha256"] for n, e in manifest["networks"].items()},
        }
    else:
        state = ckpt.load(rd.last_checkpoint)  # a damaged file: one UserError naming it
        tensors, files = state.get("networks", {}), {}
        info = {
            "images_seen": int(state["images_seen"]),
            "checkpoint": str(rd.last_checkpoint),
            "weights": "raw",
            "weights_sha256": None,
        }
    cfg = run_config(rd.path)
    with reading(rd.path / "config.yaml", "is not a readable run config"):
        family_cls = get_class(cfg.model._target_)
    # Seeded as the trainer seeds it: frozen parts built from random weights (source: random) are
    # then the ones the run trained with; the caller's RNG streams are left as they were.
    with ckpt.isolated_rng():
        ckpt.seed_all(int(cfg.seed))
        family = family_cls.from_config(cfg)
    for name, m in family.networks().items():
        with reading(files.get(name, rd.last_checkpoint), f"does not fit network {name!r} of config.yaml"):
            m.load_state_dict(tensors[name])
    family.to(torch.device(device)).eval()
    return family, cfg, info
