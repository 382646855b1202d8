"""The run directory (DESIGN.md "A run directory holds everything about a run") and ``load_run``.

```
run_dir/config.yaml             the resolved config (written at start; rewritten on resume)
run_dir/checkpoints/last.pt     full training state; images_<N>.pt periodic copies (keep-last-k)
run_dir/weights/<net>.safetensors + manifest.json   sampling weights (EMA for the ema_network)
run_dir/metrics.jsonl  samples/  eval/
```
"""

from __future__ import annotations

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

    def check_compatible(self, cfg: DictConfig) -> None:
        """Resuming with a different model/data/seed would silently mix two runs: refuse."""
        if not self.last_checkpoint.exists():
            return
        old = OmegaConf.create(ckpt.load(self.last_checkpoint)["config_yaml"])
        for key in IDENTITY_KEYS:
            a, b = OmegaConf.select(old, key), OmegaConf.select(cfg, key)
            a = OmegaConf.to_container(a) if isinstance(a, DictConfig) else a
            b = OmegaConf.to_container(b) if isinstance(b, DictConfig) else b
            if a != b:
                raise ConfigError(
                    f"run_dir={str(self.path)!r} holds a run with another {key} ({_short(a)} != {_short(b)}); "
                    f"resume with the same config or choose a new run_dir"
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


def _short(v, n: int = 60) -> str:
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


def load_run(run_dir, *, weights: str = "ema", device="cpu"):
    """Rebuild a run's family for sampling/evaluation (docs/CONTRACTS.md "Engine").

    weights: ``ema`` (``weights/``: the EMA of the sampling network, the others as trained) or
    ``raw`` (the live weights of ``checkpoints/last.pt``). Returns ``(family, cfg, info)`` with the
    family in eval mode on ``device``; ``info``: ``images_seen``, ``checkpoint``, ``weights``,
    ``weights_sha256`` (per network; None for ``raw``).
    """
    rd = RunDir(Path(run_dir))
    if weights not in ("ema", "raw"):
        raise ConfigError(f"weights={weights!r} is not allowed; choose one of: ema, raw")
    if not (rd.path / "config.yaml").exists():
        raise UserError(f"{str(rd.path)!r} is not a run directory (no config.yaml)")
    cfg = OmegaConf.load(rd.path / "config.yaml")
    family = get_class(cfg.model._target_).from_config(cfg)
    nets = family.networks()
    if weights == "ema":
        if not (rd.weights / "manifest.json").exists():
            raise UserError(f"{str(rd.weights)!r} has no manifest.json: the run has not written weights yet")
        tensors, manifest = ckpt.read_weights(rd.weights)
        for name, m in nets.items():
            m.load_state_dict(tensors[name])
        info = {
            "images_seen": manifest["images_seen"],
            "checkpoint": str(rd.path / manifest["checkpoint"]),
            "weights": "ema" if manifest.get("ema_network") else "raw",
            "weights_sha256": {n: e["sha256"] for n, e in manifest["networks"].items()},
        }
    else:
        state = ckpt.load(rd.last_checkpoint)
        for name, m in nets.items():
            m.load_state_dict(state["networks"][name])
        info = {
            "images_seen": int(state["images_seen"]),
            "checkpoint": str(rd.last_checkpoint),
            "weights": "raw",
            "weights_sha256": None,
        }
    family.to(torch.device(device)).eval()
    return family, cfg, info
