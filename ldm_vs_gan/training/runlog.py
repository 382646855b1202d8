"""Where the loop's numbers go: ``metrics.jsonl`` (always), wandb (``logger=wandb``), a tqdm bar.

Only rank 0 logs. ``metrics.jsonl`` has one JSON object per logged step (``step``,
``images_seen``, losses, ``lr/<phase>``, ``img_per_s``, skip counts, ...); on resume lines past
the checkpoint are dropped, so the file tells the history of the weights that exist. wandb runs
offline unless ``logger.mode`` says otherwise; its run id is kept in the run dir so a resumed run
continues the same wandb run.
"""

from __future__ import annotations

import json
import math
import sys
import uuid
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from ldm_vs_gan import schema
from ldm_vs_gan.training.config import LOGGERS, LoggerConfig

__all__ = ["LOGGERS", "RunLogger", "truncate_jsonl"]


def _jsonable(v):
    if isinstance(v, float) and not math.isfinite(v):
        return str(v)
    return v


def truncate_jsonl(path: Path, images_seen: int) -> None:
    """Keep only records up to ``images_seen`` (the resumed checkpoint)."""
    if not path.exists():
        return
    keep = []
    for line in path.read_text().splitlines():
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:  # a line torn by a kill
            continue
        if rec.get("images_seen", 0) <= images_seen:
            keep.append(line)
    path.write_text("".join(line + "\n" for line in keep))


class RunLogger:
    def __init__(
        self,
        run_dir: Path,
        cfg: DictConfig,
        *,
        enabled: bool,
        max_images: int,
        start_images: int,
        progress: bool,
    ):
        self.enabled = enabled
        self.run_dir = run_dir
        self.wandb = None
        self.bar = None
        self._file = None
        # a missing logger node is logger=none; keys, defaults and checks: training/config.py
        self.config = schema.read(LoggerConfig, cfg.get("logger"), "logger")
        if not enabled:
            return
        path = run_dir / "metrics.jsonl"
        truncate_jsonl(path, start_images)
        self._file = open(path, "a", buffering=1)
        if self.config.name == "wandb":
            self._init_wandb(cfg)
        if progress:
            from tqdm import tqdm

            self.bar = tqdm(
                total=max_images,
                initial=start_images,
                unit="img",
                unit_scale=True,
                dynamic_ncols=True,
                file=sys.stderr,
                desc=cfg.model.get("name", "train"),
                smoothing=0.1,
            )

    def _init_wandb(self, cfg: DictConfig) -> None:
        import wandb

        lc = self.config
        id_file = self.run_dir / "wandb_id.txt"
        run_id = id_file.read_text().strip() if id_file.exists() else uuid.uuid4().hex[:8]
        id_file.write_text(run_id + "\n")
        self.wandb = wandb.init(
            project=lc.project,
            entity=lc.entity,
            group=lc.group,
            tags=list(lc.tags),
            name=lc.run_name or self.run_dir.name,
            mode=lc.mode,
            dir=str(self.run_dir),
            id=run_id,
            resume="allow",
            config=OmegaConf.to_container(cfg, resolve=True),
        )
        self.log_images = lc.log_images

    def log(self, record: dict) -> None:
        if not self.enabled:
            return
        self._file.write(json.dumps({k: _jsonable(v) for k, v in record.items()}) + "\n")
        if self.wandb is not None:
            self.wandb.log(
                {k: v for k, v in record.items() if isinstance(v, (int, float))},
                step=int(record["images_seen"]),
            )

    def image(self, key: str, path: Path, images_seen: int, caption: str = "") -> None:
        if self.enabled and self.wandb is not None and self.log_images:
            import wandb

            self.wandb.log({key: wandb.Image(str(path), caption=caption)}, step=int(images_seen))

    def progress(self, n_images: int, postfix: dict | None = None) -> None:
        if self.bar is not None:
            self.bar.update(n_images)
            if postfix:
                self.bar.set_postfix(postfix, refresh=False)

    def message(self, text: str) -> None:
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.write(text, file=sys.stderr)
        else:
            print(text, file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        if self._file is not None:
            self._file.close()
        if self.wandb is not None:
            self.wandb.finish()
