"""wandb is optional: with ``logger=none`` a run trains in a process where ``import wandb`` fails
(machines without it, such as the GPU check's), and ``logger=wandb`` there is one line naming the
key, before any work."""

from __future__ import annotations

import subprocess
import sys

from support.engine import REPO, make_cfg, subprocess_env, write_cfg

# Made unimportable before anything of ours is imported; the runner trains each config given.
RUNNER = "import sys; sys.modules['wandb'] = None; from support.engine import main; main(sys.argv[1:])"


def _train_without_wandb(cfg_path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", RUNNER, str(cfg_path)],
        cwd=REPO,
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_logger_none_trains_without_wandb(tmp_path):
    cfg = make_cfg(tmp_path / "run", **{"trainer.max_images": 32})
    proc = _train_without_wandb(write_cfg(cfg, tmp_path / "cfg.yaml"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (tmp_path / "run/checkpoints/last.pt").is_file()
    assert len((tmp_path / "run/metrics.jsonl").read_text().splitlines()) == 2
    assert not (tmp_path / "run/wandb").exists()


def test_logger_wandb_without_wandb_is_one_line(tmp_path):
    cfg = make_cfg(tmp_path / "run", **{"logger.name": "wandb"})
    proc = _train_without_wandb(write_cfg(cfg, tmp_path / "cfg.yaml"))
    assert proc.returncode == 2, proc.stderr[-3000:]
    lines = proc.stderr.strip().splitlines()
    assert lines[-1].startswith("error: logger=wandb needs the wandb package") and "logger=none" in lines[-1]
    assert not (tmp_path / "run/checkpoints").exists()  # refused before any work
