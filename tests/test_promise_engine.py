"""The engine's promises on the real path: ``python -m ldm_vs_gan.train`` with the real toy-world
loader, the real quick evaluation, sample grids and checkpoints on their default intervals.

- exact resume: a run stopped and relaunched (also with other loader workers, after SIGTERM to the
  whole process group, after kill -9 at a random moment) ends with every tensor of its checkpoint
  bitwise equal to the uninterrupted run's (same computation on the same machine);
- SIGTERM/SIGINT: a checkpoint and exit status 75, never a worker crash;
- one writer per run dir;
- configuration and file errors: one line naming the key or the file, before the first step.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import time

import pytest
import torch
from promise_support import LDM_TINY, REPO, compare_states, env, load, train, train_cmd

BUDGET = 512  # 32 steps of 16: long enough to be stopped in the middle
SEED = ["seed=3"]


def _args(run_dir, *extra, budget: int = BUDGET) -> list[str]:
    return [*LDM_TINY, *SEED, f"trainer.max_images={budget}", f"run_dir={run_dir}", *extra]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The uninterrupted run every interrupted one is compared with."""
    rd = tmp_path_factory.mktemp("ref") / "run"
    proc = train(_args(rd))
    assert proc.returncode == 0, proc.stderr[-3000:]
    return load(rd / "checkpoints/last.pt")


def _assert_bitwise(reference: dict, run_dir) -> int:
    state = load(run_dir / "checkpoints/last.pt")
    assert state["images_seen"] == reference["images_seen"]
    n, diffs = compare_states(reference, state)
    assert n > 900, n  # networks, optimizer moments, EMA, RNG streams
    assert not diffs, f"{len(diffs)} of {n} differ, e.g. {diffs[:5]}"
    return n


def _history(run_dir) -> list[int]:
    recs = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [r["images_seen"] for r in recs if "img_per_s" in r]


def _popen(args, **kw) -> subprocess.Popen:
    return subprocess.Popen(
        train_cmd(args), cwd=REPO, env=env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw
    )


def _wait_for_steps(run_dir, proc, n_records: int, timeout: float = 120) -> None:
    metrics = run_dir / "metrics.jsonl"
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None:
        if metrics.exists() and len(metrics.read_text().splitlines()) >= n_records:
            return
        time.sleep(0.05)
    assert proc.poll() is None, proc.communicate()[1][-3000:]
    raise AssertionError(f"no {n_records} metric records in {timeout}s")


def test_resume_with_the_real_loader_and_other_workers_is_bitwise(reference, tmp_path):
    rd = tmp_path / "run"
    first = train([*LDM_TINY, *SEED, "trainer.max_images=192", f"run_dir={rd}"])
    assert first.returncode == 0, first.stderr[-3000:]
    assert load(rd / "checkpoints/last.pt")["images_seen"] == 192
    # loader workers do not change the data: a resume may change them
    second = train(_args(rd, "data.num_workers=2"))
    assert second.returncode == 0, second.stderr[-3000:]
    assert "resumed from" in second.stderr and "DataLoader worker" not in second.stderr
    print(f"compared {_assert_bitwise(reference, rd)} tensors")
    assert _history(rd) == list(range(16, BUDGET + 1, 16))  # one history, every step once


def test_sigterm_to_the_process_group_with_workers_checkpoints_and_resumes_bitwise(reference, tmp_path):
    rd = tmp_path / "run"
    proc = _popen(_args(rd, "data.num_workers=2"), start_new_session=True)
    _wait_for_steps(rd, proc, 6)
    os.killpg(proc.pid, signal.SIGTERM)  # what SLURM preemption and `timeout` send: every process
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 75, err[-3000:]  # stopped early, resumable
    assert "stopped by SIGTERM" in err and "Traceback" not in err and "DataLoader worker" not in err
    stopped_at = load(rd / "checkpoints/last.pt")["images_seen"]
    assert 0 < stopped_at < BUDGET
    again = train(_args(rd, "data.num_workers=2"))
    assert again.returncode == 0, again.stderr[-3000:]
    assert f"at images_seen={stopped_at}" in again.stderr
    _assert_bitwise(reference, rd)


def _lines(path) -> int:
    return len(path.read_text().splitlines()) if path.exists() else 0


def _kill_and_resume(reference, rd, kills: int, rng: random.Random, budget: int = BUDGET) -> list[int]:
    """kill -9 at random moments of training (after the launch's first new step, so that kills
    land between and during checkpoint writes, not only in start-up), relaunch each time, then
    finish; returns the images seen of the checkpoint each relaunch found."""
    points = []
    for _ in range(kills):
        proc = _popen(_args(rd, budget=budget), start_new_session=True)
        _wait_for_steps(rd, proc, _lines(rd / "metrics.jsonl") + 1)
        time.sleep(rng.uniform(0.0, 2.0))
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate(timeout=60)
        last = rd / "checkpoints/last.pt"
        points.append(load(last)["images_seen"] if last.exists() else 0)
        if points[-1] >= budget - 64:
            break
    done = train(_args(rd, budget=budget))
    assert done.returncode == 0, done.stderr[-3000:]
    print(f"compared {_assert_bitwise(reference, rd)} tensors")
    return points


def test_kill_9_at_a_random_moment_then_resume_is_bitwise(reference, tmp_path):
    print("kill points:", _kill_and_resume(reference, tmp_path / "run", 1, random.Random()))


@pytest.mark.slow
def test_five_kill_9_at_random_moments_then_resume_is_bitwise(tmp_path):
    """Long enough (64 steps) that five kills, each at most about two seconds of training after the
    relaunch, all land before the end."""
    budget = 1024
    ref = train(_args(tmp_path / "ref", budget=budget))
    assert ref.returncode == 0, ref.stderr[-3000:]
    reference = load(tmp_path / "ref/checkpoints/last.pt")
    points = _kill_and_resume(reference, tmp_path / "run", 5, random.Random(), budget)
    print("kill points:", points)
    assert len(points) == 5


def test_second_training_on_the_same_run_dir_is_refused_while_the_first_runs(tmp_path):
    rd = tmp_path / "run"
    first = _popen([*LDM_TINY, "trainer.max_images=100000", f"run_dir={rd}"], start_new_session=True)
    _wait_for_steps(rd, first, 2)
    second = train([*LDM_TINY, "trainer.max_images=100000", f"run_dir={rd}"], timeout=120)
    assert second.returncode == 2
    assert second.stderr.strip().count("\n") == 0 and "in use by another training" in second.stderr
    os.killpg(first.pid, signal.SIGTERM)
    _, err = first.communicate(timeout=120)
    assert first.returncode == 75, err[-3000:]
    # the lock went with the first process: the run resumes and its history is one history
    at = load(rd / "checkpoints/last.pt")["images_seen"]
    third = train([*LDM_TINY, f"trainer.max_images={at + 32}", f"run_dir={rd}"])
    assert third.returncode == 0, third.stderr[-3000:]
    hist = _history(rd)
    assert hist == sorted(set(hist)) and hist[-1] == at + 32


def _one_line(proc, *needles) -> str:
    err = proc.stderr.strip()
    assert proc.returncode == 2, err[-3000:]
    assert err.startswith("error: ") and "\n" not in err, err[-3000:]
    for needle in needles:
        assert needle in err, err
    return err


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    """A finished 64-image run with periodic copies at 32 and 64 (for damaged-checkpoint cases)."""
    rd = tmp_path_factory.mktemp("small") / "run"
    proc = train([*LDM_TINY, "trainer.max_images=64", "trainer.ckpt_every=32", f"run_dir={rd}"])
    assert proc.returncode == 0, proc.stderr[-3000:]
    return rd


def _copy_run(src, dst):
    import shutil

    shutil.copytree(src, dst)
    (dst / ".lock").unlink(missing_ok=True)
    return dst


def test_truncated_last_checkpoint_resumes_from_the_intact_periodic_copy(small_run, tmp_path):
    rd = _copy_run(small_run, tmp_path / "run")
    last = rd / "checkpoints/last.pt"
    os.unlink(last)  # last.pt is a hard link of the newest copy: damage a file of its own
    last.write_bytes((rd / "checkpoints/images_000000000064.pt").read_bytes()[:5000])
    (rd / "checkpoints/images_000000000064.pt").unlink()
    proc = train([*LDM_TINY, "trainer.max_images=96", "trainer.ckpt_every=32", f"run_dir={rd}"])
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "passed over an unreadable checkpoint" in proc.stderr and str(last) in proc.stderr
    assert "images_000000000032.pt at images_seen=32" in proc.stderr
    assert load(last)["images_seen"] == 96


@pytest.mark.parametrize("content", ["empty", "pickle"])
def test_unreadable_checkpoint_is_one_line_naming_the_file(small_run, tmp_path, content):
    import pickle

    rd = _copy_run(small_run, tmp_path / "run")
    for f in (rd / "checkpoints").iterdir():
        f.unlink()
    last = rd / "checkpoints/last.pt"
    if content == "empty":
        last.write_bytes(b"")
    else:  # a checkpoint that would run code when unpickled without weights_only
        torch.save({"images_seen": 1, "evil": pickle.loads(pickle.dumps(os.getcwd))}, last)
    proc = train([*LDM_TINY, "trainer.max_images=96", f"run_dir={rd}"])
    _one_line(proc, str(last))


@pytest.mark.parametrize(
    "override, needle",
    [
        ("model.optim.lr=-1", "model.optim.lr=-1"),
        ("model.optim.lr=abc", "model.optim.lr='abc'"),
        ("data.resolution=abc", "data.resolution"),
        ("seed=abc", "seed='abc'"),
    ],
)
def test_bad_values_are_one_line_naming_the_key(tmp_path, override, needle):
    proc = train([*LDM_TINY, override, f"run_dir={tmp_path / 'run'}"], timeout=120)
    _one_line(proc, needle)
    assert not (tmp_path / "run").exists()  # refused before Hydra creates the run dir


def test_run_dir_that_is_a_file_is_one_line(tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    _one_line(train([*LDM_TINY, f"run_dir={f}"], timeout=120), str(f), "is a file")


def test_refused_resume_names_what_differs_and_leaves_the_run_alone(small_run, tmp_path):
    rd = _copy_run(small_run, tmp_path / "run")
    before = (rd / "config.yaml").read_text()
    proc = train([*LDM_TINY, "trainer.max_images=96", "model.optim.lr=0.01", f"run_dir={rd}"])
    err = _one_line(proc, "model.optim.lr: ", "-> 0.01")
    assert "data" not in err.split("other settings:")[1].split(";")[0]
    assert (rd / "config.yaml").read_text() == before and not (rd / ".hydra").exists()


def test_changing_the_lr_schedule_on_resume_is_said(small_run, tmp_path):
    rd = _copy_run(small_run, tmp_path / "run")
    proc = train([*LDM_TINY, "trainer.max_images=96", "trainer.lr_decay=cosine", f"run_dir={rd}"])
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "learning-rate schedule changed on resume" in proc.stderr


def test_missing_heldout_split_fails_before_the_first_step(tmp_path):
    from omegaconf import OmegaConf

    from ldm_vs_gan.toy import world as toy

    world = OmegaConf.load(REPO / "configs/data/toy.yaml")
    toy.ensure_world(world)
    shards = toy.shard_paths(world, "train")  # real tar shards, read as a user's own data
    t0 = time.perf_counter()
    proc = train(
        [*LDM_TINY, "data=laion", f"data.shards={shards[0]}", "data.min_size=0", f"run_dir={tmp_path / 'r'}"],
        timeout=120,
    )
    _one_line(proc, "data.heldout_shards", "trainer.sample_every")
    assert not (tmp_path / "r/checkpoints").exists() and not (tmp_path / "r/metrics.jsonl").exists()
    print(f"refused in {time.perf_counter() - t0:.1f}s")
