"""benchmarks/gpu_check.py: its dry run (CPU, tiny sizes, no install) executes every part once and
records numbers for each; a part over its time box is stopped with what it started and recorded
as a timeout, a failing one as failed, the ones after still run, and parts that no longer fit the
budget are skipped. The wheel bundle's dependency closure and the install's choice of wheels are
checked offline."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile

import pytest
from support.engine import REPO, subprocess_env

sys.path.insert(0, str(REPO / "benchmarks"))

from gpu_parts import bundle, install, runner  # noqa: E402

SCRIPT = REPO / "benchmarks" / "gpu_check.py"
PARTS = ["pytest", "unet", "galip", "fid", "torchrun", "pipeline"]


def _check(tmp_path, *args, timeout=600):
    out = tmp_path / "out" / "gpu_check.json"
    cmd = [sys.executable, str(SCRIPT), "--out", str(out), "--work", str(tmp_path / "work"), *args]
    proc = subprocess.run(
        cmd, cwd=REPO, env=subprocess_env(), capture_output=True, text=True, timeout=timeout
    )
    return proc, json.loads(out.read_text())


def test_dry_run_executes_every_part_with_numbers(tmp_path):
    cache = os.environ["LDM_VS_GAN_CACHE"]  # the session's: the small toy world is made once
    proc, s = _check(tmp_path, "--dry-run", "--cache", cache)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert s["dry_run"] and s["all_ok"] and list(s["parts"]) == PARTS
    p = s["parts"]
    assert all(p[k]["status"] == "ok" and p[k]["seconds"] > 0 for k in PARTS), {
        k: p[k]["status"] for k in PARTS
    }
    assert p["pytest"]["passed"] >= 5 and p["pytest"]["failures"] == p["pytest"]["errors"] == 0
    unet = p["unet"]["tiny"]
    assert (
        unet["img_per_s_ours"] > 0
        and unet["img_per_s_diffusers"] > 0
        and unet["ratio_ours_over_diffusers"] > 0
    )
    assert unet["params_ours_M"] == pytest.approx(unet["params_diffusers_M"], rel=0.02)
    galip = p["galip"]
    assert galip["galip"]["train_img_per_s"] > 0 and galip["galip"]["sample_img_per_s"] > 0
    assert galip["ldm_sampling_tiny"]["steps"] == 25 and galip["ldm_sampling_tiny"]["latency_s_batch1"] > 0
    assert p["fid"]["fid"] > 0 and p["fid"]["kid_mean"] > 0 and abs(p["fid"]["fid_real_vs_real"]) < 1e-2
    torchrun = p["torchrun"]
    assert torchrun["group"]["backend"] == "gloo" and torchrun["group"]["ddp_step_ok"]
    assert torchrun["run"]["images_seen"] == 128 and 0 <= torchrun["run"]["quick_eval"]["eval/fidelity"] <= 1
    for fam in ("ldm", "galip"):
        run = p["pipeline"][fam]
        assert run["status"] == "ok" and run["images_seen"] == 128 and run["img_per_s_median"] > 0
        assert 0 <= run["quick_eval"]["eval/fidelity"] <= 1 and run["quick_eval"]["eval/fid_toy"] > 0
    logs = (tmp_path / "out" / "gpu_check_logs.txt").read_text()
    assert "===== pipeline_ldm.log" in logs and "===== torchrun.log" in logs


def test_parts_over_their_box_or_failing_are_recorded(tmp_path):
    env = dict(os.environ)
    # a part that starts a child and hangs: both are gone after the box
    hang = "import subprocess, time; subprocess.Popen(['sleep', '300']); time.sleep(300)"
    rec = runner.run_part(
        "hang", [sys.executable, "-c", hang], 2, tmp_path / "h.json", tmp_path / "h.log", env
    )
    assert rec["status"] == "timeout" and rec["seconds"] < 30 and rec["time_box_s"] == 2
    left = subprocess.run(["pgrep", "-f", "sleep 300"], capture_output=True, text=True).stdout.split()
    assert not left, "the part's child outlived its box"
    # a part that records a number, then fails: the number and the error's log are kept
    fail = (
        "import sys; sys.path.insert(0, sys.argv[1]); from pathlib import Path; from gpu_parts.runner import Recorder; "
        "r = Recorder(Path(sys.argv[2])); r['done'] = 1; raise SystemExit('broken here')"
    )
    cmd = [sys.executable, "-c", fail, str(REPO / "benchmarks"), str(tmp_path / "f.json")]
    rec = runner.run_part("fail", cmd, 60, tmp_path / "f.json", tmp_path / "f.log", env)
    assert rec["status"] == "failed" and rec["done"] == 1 and "broken here" in rec["log_tail"]


def test_parts_that_no_longer_fit_the_budget_are_skipped(tmp_path):
    proc, s = _check(tmp_path, "--dry-run", "--budget-s", "5", "--parts", "unet,fid", timeout=120)
    assert proc.returncode == 1 and not s["all_ok"]
    assert [p["status"] for p in s["parts"].values()] == ["skipped", "skipped"]


def test_bundle_closure_holds_what_the_gpu_machine_lacks():
    top = bundle.top_level()
    names = {bundle.norm(r.name) for r in top}
    assert {"open-clip-torch", "diffusers", "hydra-core", "webdataset", "torch-fidelity", "pytest"} <= names
    assert not names & {"torch", "torchvision", "torchmetrics", "wandb"}
    pins = bundle.closure(top)
    # hydra's parser (a source archive only), the tokenizer's and the hub's dependencies come along
    for dep in (
        "antlr4-python3-runtime",
        "omegaconf",
        "ftfy",
        "wcwidth",
        "regex",
        "huggingface-hub",
        "pyyaml",
    ):
        assert dep in pins, dep
    assert not set(pins) & {"torch", "numpy", "wandb", "pillow"}
    assert all("==" in p for n, p in pins.items()), (
        "every installed dependency is pinned to this venv's version"
    )


def _wheel(folder, name: str, version: str, requires=()) -> None:
    meta = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n" + "".join(
        f"Requires-Dist: {r}\n" for r in requires
    )
    with zipfile.ZipFile(folder / f"{name.replace('-', '_')}-{version}-py3-none-any.whl", "w") as z:
        z.writestr(f"{name.replace('-', '_')}-{version}.dist-info/METADATA", meta)


def test_install_takes_the_missing_and_the_refused_and_keeps_what_satisfies(tmp_path):
    from importlib.metadata import version

    (tmp_path / "requirements.txt").write_text("no-such-dist-here==1.0\n")
    _wheel(tmp_path, "no-such-dist-here", "1.0", requires=["packaging>=999", "iniconfig"])
    _wheel(tmp_path, "packaging", "999.0")  # installed here, but refused by a requirement
    _wheel(tmp_path, "iniconfig", version("iniconfig"))  # installed and satisfying: kept
    chosen, kept = install.to_install(tmp_path)
    assert sorted(w.name.split("-")[0] for w in chosen) == ["no_such_dist_here", "packaging"] and kept == 1
