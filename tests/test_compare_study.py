"""The study script (`make compare`) plans the same budget and batch for both families and every
seed, evaluates each run at the same N, and skips what is already done."""

import argparse
import importlib.util
import json
import sys

import pytest
from test_engine_support import REPO


def load_study():
    spec = importlib.util.spec_from_file_location("study_run", REPO / "experiments/toy_ldm_vs_galip/run.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["study_run"] = mod  # dataclasses resolve annotations through the module registry
    spec.loader.exec_module(mod)
    return mod


def test_study_plan_is_fair_and_resumable(tmp_path, capsys):
    study = load_study()
    args = ["--dry-run", "--runs-root", str(tmp_path), "--out", str(tmp_path / "rep"), "--budget", "1000"]
    assert study.main(args) == 0
    cmds = [ln[2:] for ln in capsys.readouterr().out.splitlines() if ln.startswith("$ ")]
    train = [c for c in cmds if "ldm_vs_gan.train" in c]
    assert len(train) == 6  # 2 families x 3 seeds
    for c in train:  # identical budget and batch for every run
        assert "trainer.max_images=1000" in c and "trainer.batch_size=32" in c
    main_evals = [c for c in cmds if "eval_study_main.json" in c]
    assert len(main_evals) == 6 and all("--num-samples 500" in c for c in main_evals)
    assert sum("--steps" in c for c in cmds) == 4 and sum("eval_study_onestep" in c for c in cmds) == 1
    assert "ldm_vs_gan.compare" in cmds[-1]
    # a finished run is not trained again
    man = tmp_path / "galip-s1" / "weights" / "manifest.json"
    man.parent.mkdir(parents=True)
    man.write_text(json.dumps({"images_seen": 1000}))
    assert study.main(args) == 0
    out = capsys.readouterr().out
    assert "skip training galip-s1" in out and "seed=1 run_dir=" + str(tmp_path / "galip-s1") not in out
    # a run trained past its budget is another budget's run: refused, not reused
    man.write_text(json.dumps({"images_seen": 2000}))
    with pytest.raises(SystemExit, match="galip-s1: trained to 2000 images, not its budget 1000"):
        study.main(args)
    # an evaluation made from other weights than the run's final ones is redone
    run = next(r for r in study.plan(study.parse_args(args)) if r.path.name == "ldm-s0")
    f = tmp_path / "ldm-s0" / "eval" / "eval_study_main.json"
    f.parent.mkdir(parents=True)
    f.write_text(json.dumps({"provenance": {"checkpoint": {"images_seen": 500}}}))
    assert not study.done(f, run)
    f.write_text(json.dumps({"provenance": {"checkpoint": {"images_seen": 1000}}}))
    assert study.done(f, run)


def test_jobs_run_concurrently_and_keep_each_jobs_order(tmp_path):
    study = load_study()
    study.THREADS["n"] = 1
    gate = tmp_path / "gate"

    def step(name, wait_for=None):  # appends its name; optionally waits for the other job's file
        code = "import pathlib,sys,time\n"
        if wait_for:
            code += f"t=time.time()\nwhile not pathlib.Path({str(wait_for)!r}).exists() and time.time()-t<20: time.sleep(0.05)\n"
        code += f"print({name!r}, pathlib.Path({str(gate)!r}).exists())\n"
        return [sys.executable, "-c", code]

    a = tmp_path / "a.log"
    b = tmp_path / "b.log"
    touch = [sys.executable, "-c", f"import pathlib; pathlib.Path({str(gate)!r}).touch()"]
    jobs = [
        ("a", [(step("a1", wait_for=gate), a), (step("a2"), a)], None),
        ("b", [(touch, b), (step("b2"), b)], None),
    ]
    t = study.run_all(jobs, 2, dry=False)
    assert set(t) == {"a", "b"} and all(v["wall_s"] > 0 for v in t.values())
    # job a's first command could only finish because job b ran at the same time
    assert a.read_text().splitlines() == ["a1 True", "a2 True"]
    assert b.read_text().splitlines() == ["b2 True"]


def test_ladder_plan_trains_later_budgets_and_side_contestants_for_the_long_seeds(tmp_path, capsys):
    study = load_study()
    args = [
        "--dry-run",
        "--runs-root",
        str(tmp_path),
        "--out",
        str(tmp_path / "rep"),
        "--budgets",
        "1000,4000",
    ]
    assert study.main(args + ["--side-contestants", "galip_faithful"]) == 0
    cmds = [ln[2:] for ln in capsys.readouterr().out.splitlines() if ln.startswith("$ ")]
    train = {c.split("run_dir=")[1].split()[0].rsplit("/", 1)[1]: c for c in cmds if "ldm_vs_gan.train" in c}
    first = {f"{f}-s{s}" for f in ("ldm", "galip") for s in (0, 1, 2)} | {"galip_faithful-s0"}
    assert set(train) == first | {"ldm-4k-s0", "galip-4k-s0", "galip_faithful-4k-s0"}
    for name, c in train.items():  # every run is its own run to its own budget, same batch
        assert f"trainer.max_images={4000 if '-4k-' in name else 1000}" in c and "trainer.batch_size=32" in c
        faithful = "model.optim.lr_g=1e-4 model.augment.translation=0" in c
        assert faithful == name.startswith("galip_faithful") and ("model=galip" in c) == ("galip" in name)
    # the trade-off sweep at every budget on the first seed of the main contestants; NFE once
    sweeps = {
        c.split("--run ")[1].split()[0].rsplit("/", 1)[1]
        for c in cmds
        if "eval_study_guidance_" in c or "eval_study_truncation_" in c
    }
    assert sweeps == {"ldm-s0", "galip-s0", "ldm-4k-s0", "galip-4k-s0"}
    assert sum("--steps" in c for c in cmds) == 4
    # the report groups runs by contestant and budget
    report = cmds[-1]
    assert "ldm_vs_gan.compare" in report and f"ldm@1k={tmp_path / 'ldm-s1'}" in report
    assert f"galip_faithful@4k={tmp_path / 'galip_faithful-4k-s0'}" in report


def test_a_failed_job_lets_the_running_one_end_and_starts_no_other(tmp_path):
    study = load_study()
    study.STOP.clear()
    fail = [sys.executable, "-c", "raise SystemExit(3)"]
    slow = [
        sys.executable,
        "-c",
        f"import time, pathlib; time.sleep(1); pathlib.Path({str(tmp_path / 'b')!r}).touch()",
    ]
    late = [sys.executable, "-c", f"import pathlib; pathlib.Path({str(tmp_path / 'c')!r}).touch()"]
    jobs = [(k, [(c, tmp_path / f"{k}.log")], None) for k, c in (("a", fail), ("b", slow), ("c", late))]
    with pytest.raises(SystemExit, match="command failed"):
        study.run_all(jobs, 2, dry=False)
    assert (tmp_path / "b").exists() and not (tmp_path / "c").exists()
    study.STOP.clear()


def test_sh_records_wall_and_cpu_seconds_of_each_command(tmp_path):
    study = load_study()
    busy = [sys.executable, "-c", "x = 0\nfor i in range(3_000_000): x += i"]
    idle = [sys.executable, "-c", "import time; time.sleep(0.5)"]
    rec = tmp_path / "run" / "timings.json"
    jobs = [
        ("busy", [(busy, tmp_path / "b.log")], (rec, "train")),
        ("idle", [(idle, tmp_path / "i.log")], None),
    ]
    t = study.run_all(jobs, 2, dry=False)
    assert t["busy"]["cpu_s"] > 0.1 and t["busy"]["wall_s"] > 0.1
    assert t["idle"]["wall_s"] >= 0.5 and t["idle"]["cpu_s"] < 0.4  # sleeping costs no CPU
    first = json.loads(rec.read_text())["train"]
    assert first["commands"] == 1 and abs(first["cpu_s"] - t["busy"]["cpu_s"]) < 1e-9
    # a failed (interrupted) command still counts: a resumed run adds its pieces
    with pytest.raises(SystemExit, match="command failed"):
        study.sh([sys.executable, "-c", "raise SystemExit(3)"], False, tmp_path / "f.log", (rec, "train"))
    assert json.loads(rec.read_text())["train"]["commands"] == 2
    # the study's timings.json gathers the runs' records; its total adds up resumed invocations
    runs = [argparse.Namespace(path=tmp_path / "run"), argparse.Namespace(path=tmp_path / "none")]
    path = tmp_path / "timings.json"
    study.write_timings(path, runs, (1.0, 0.5), 6.0, fresh=True)
    study.write_timings(path, runs, (2.0, 1.5), 2.0, fresh=False)
    d = json.loads(path.read_text())
    assert d["run"]["train"]["commands"] == 2 and "none" not in d
    assert d["report"] == {"wall_s": 2.0, "cpu_s": 1.5} and d["total"]["wall_s"] == 8.0


def _fake_study(tmp_path, per_run: dict) -> tuple:
    """summary.json and each run's timings.json and metrics.jsonl as the study writes them."""
    study = load_study()
    a = study.parse_args(["--runs-root", str(tmp_path), "--budgets", "1000,4000", "--side-contestants", ""])
    runs = [r for r in study.plan(a) if r.path.name in per_run]
    summ = {}
    for r in runs:
        r.path.mkdir(parents=True)
        (r.path / "metrics.jsonl").write_text(json.dumps({"images_seen": 32, "flops_per_image": 2e9}) + "\n")
        summ[r.path.name] = {"family": r.label, "images_seen": r.budget, "img_per_s": 10.0, "latency_s": 0.5,
                             "evals": [{"file": "eval_study_main.json", "metrics": per_run[r.path.name]}]}  # fmt: skip
        (r.path / "timings.json").write_text(
            json.dumps({"train": {"wall_s": 100.0, "cpu_s": 90.0, "commands": 1}})
        )
    out = tmp_path / "rep"
    out.mkdir()
    (out / "summary.json").write_text(json.dumps(summ))
    return study, runs, out, argparse.Namespace(batch_size=32, eval_n=500)


def test_results_tables_per_budget_with_intervals_and_difference_tests(tmp_path):
    def m(fid, single, n_single=100):
        return {
            "fid": fid,
            "fidelity/single/overall": single,
            "fidelity/n_single": n_single,
            "fidelity/n_two": 0,
        }

    per_run = {"ldm-s0": m(500.0, 0.4), "ldm-s1": m(600.0, 0.6), "ldm-s2": m(550.0, 0.5),
               "galip-s0": m(800.0, 0.2), "galip-s1": m(900.0, 0.1), "galip-s2": m(850.0, 0.15),
               "ldm-4k-s0": m(300.0, 0.6), "galip-4k-s0": m(700.0, 0.4)}  # fmt: skip
    study, runs, out, a = _fake_study(tmp_path, per_run)
    text = study.ladder.write(out, runs, a)
    small, big = text.split("**1000 images per run**")[1].split("**4000 images per run**")
    rows = {ln.split(" | ")[0].lstrip("| "): ln for ln in small.splitlines() if ln.startswith("| ")}
    # three seeds: mean ± std [bootstrap interval] and the exact permutation test (3 vs 3: p >= 0.1)
    assert rows["FID-toy (judge features) ↓"].startswith(
        "| FID-toy (judge features) ↓ | 550.0 ± 50.0 [500.0, 600.0] (n=3) | 850.0 ± 50.0"
    )
    assert rows["FID-toy (judge features) ↓"].endswith("| p = 0.10 |")
    rows = {ln.split(" | ")[0].lstrip("| "): ln for ln in big.splitlines() if ln.startswith("| ")}
    # one seed: a Wilson interval over the 100 prompts, and a two-proportion z-test
    single = rows["prompt fidelity, single-object ↑"]
    assert "0.600 [0.502, 0.691]ᵂ (n=1)" in single and "0.400 [0.309, 0.498]ᵂ (n=1)" in single
    assert single.endswith("| p = 0.005ᶻ |")  # z = 0.2 / sqrt(0.25 * 0.02) = 2.83
    assert rows["FID-toy (judge features) ↓"].endswith("| 300.0 (n=1) | 700.0 (n=1) | - |")
    # compute: the engine's FLOPs per image x the budget, CPU seconds from run.py's timings
    assert "| training compute, TFLOP (engine's count) | 8.0 (n=1) | 8.0 (n=1) | - |" in big
    assert "| training CPU seconds (run.py) | 90 (n=1) | 90 (n=1) | - |" in big
    assert (out / "ladder.png").stat().st_size > 1000 and (
        out / "results.md"
    ).read_text().strip() == text.strip()


def test_tables_skip_nan_and_infinite_values():
    study = load_study()
    rows = [{"img_per_s": float("nan")}, {"img_per_s": 3.0}, {"img_per_s": float("inf")}]
    assert study.ladder.cell("img_per_s", rows, 1) == "3.0 (n=1)"
    assert study.ladder.difference("img_per_s", rows, rows) == "-"


def test_wilson_interval_and_two_proportion_test_against_hand_values():
    study = load_study()
    lo, hi = study.ladder.wilson(0.5, 100)
    assert abs(lo - 0.4038) < 1e-4 and abs(hi - 0.5962) < 1e-4
    assert study.ladder.wilson(0.0, 10)[0] == 0.0 and study.ladder.wilson(1.0, 10)[1] > 0.999
    assert abs(study.ladder.two_proportion_p(0.6, 100, 0.4, 100) - 0.004678) < 1e-5
    assert study.ladder.two_proportion_p(0.3, 50, 0.3, 80) == 1.0


@pytest.mark.slow  # ~40 s of seven subprocesses; the engine's own preemption test is in the fast suite
def test_a_preempted_study_resumes_its_run_and_counts_every_piece(tmp_path):
    """SIGTERM to the study's process group (a preemption): the training run writes a checkpoint
    and exits 75, the study records its seconds and exits 75; the same command resumes the run from
    that checkpoint to its budget, evaluates it and writes the report."""
    import os
    import signal
    import subprocess
    import time

    root = tmp_path / "runs"
    cmd = [sys.executable, str(REPO / "experiments/toy_ldm_vs_galip/run.py"), "--preset", "tiny",
           "--contestants", "ldm", "--seeds", "0", "--budgets", "512", "--batch-size", "8",
           "--quick-every", "0", "--eval-n", "24", "--nfe", "", "--guidance", "", "--truncation", "",
           "--jobs", "1", "--runs-root", str(root), "--out", str(tmp_path / "rep"),
           "--extra", "data.n_train=64 data.n_heldout=48 data.shard_size=64 data.judge.epochs=1"]  # fmt: skip
    # a cache of its own: its real statistics must not become another test's cache hit
    env = {**os.environ, "OMP_NUM_THREADS": "1", "LDM_VS_GAN_CACHE": str(tmp_path / "cache")}
    first = subprocess.Popen(
        cmd, env=env, start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    log, t0 = root / "ldm-s0" / "metrics.jsonl", time.time()
    while not (log.is_file() and '"images_seen": 64' in log.read_text()) and time.time() - t0 < 300:
        assert first.poll() is None, first.stdout.read().decode()[-2000:]
        time.sleep(0.2)
    os.killpg(first.pid, signal.SIGTERM)
    out = first.communicate(timeout=300)[0].decode()
    assert first.returncode == 75, out[-2000:]
    assert "stopped early (resumable)" in out
    ckpt = json.loads((root / "ldm-s0" / "timings.json").read_text())
    assert ckpt["train"]["commands"] == 1 and ckpt["train"]["cpu_s"] > 0
    stopped_at = json.loads((root / "ldm-s0" / "weights" / "manifest.json").read_text())["images_seen"]
    assert 64 <= stopped_at < 512  # checkpointed part-way
    again = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stdout[-2000:] + again.stderr[-2000:]
    train_log = (root / "logs" / "ldm-s0.train.log").read_text()
    assert "resum" in train_log.lower(), train_log[-2000:]
    man = json.loads((root / "ldm-s0" / "weights" / "manifest.json").read_text())
    assert man["images_seen"] == 512
    t = json.loads((root / "ldm-s0" / "timings.json").read_text())
    assert (
        t["train"]["commands"] == 2
        and t["train"]["cpu_s"] > ckpt["train"]["cpu_s"]
        and t["eval"]["commands"] == 2
    )
    assert (tmp_path / "rep" / "results.md").is_file() and (tmp_path / "rep" / "report.md").is_file()
