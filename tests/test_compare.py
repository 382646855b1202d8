"""quick_eval inside training, eval, and `python -m ldm_vs_gan.compare` end to end on two tiny
GALIP runs on a tiny toy world, with the real toy judge (trained by the run's preparer on the
64-image world in a second)."""

import json

import pytest
import torch
from hydra import compose, initialize_config_dir
from test_engine_support import CONFIGS

from ldm_vs_gan import compare
from ldm_vs_gan import eval as ev

WORLD = [
    "data.n_train=64",
    "data.n_heldout=48",
    "data.shard_size=64",
    "data.resolution=32",
    "data.judge.epochs=1",
]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    torch.set_num_threads(1)
    from ldm_vs_gan.training import run

    out = []
    root = tmp_path_factory.mktemp("cmp")
    for seed in (0, 1):
        with initialize_config_dir(str(CONFIGS), version_base="1.3"):
            cfg = compose(
                "train",
                overrides=[
                    "model=galip",
                    "experiment=galip_tiny",
                    "logger=none",
                    f"seed={seed}",
                    f"run_dir={root / f'galip-s{seed}'}",
                    "trainer.eval_every=16",
                    "trainer.sample_every=0",
                    "trainer.max_images=32",
                    "trainer.eval.n=16",
                    "trainer.measure_flops=false",
                    *WORLD,
                ],
            )
        out.append(run(cfg))
    return out


def test_quick_eval_logged_by_the_engine(runs):
    rows = [json.loads(ln) for ln in (runs[0] / "metrics.jsonl").read_text().splitlines()]
    q = [r for r in rows if "eval/fid_toy" in r]
    assert [r["images_seen"] for r in q] == [16, 32]
    assert all(r["eval/fid_toy"] >= 0 and 0 <= r["eval/fidelity"] <= 1 and r["eval/quick_n"] == 16 for r in q)
    # training-health readings: recall/coverage on the fixed panel, CLIP-vs-judge agreement on the
    # fakes, and how often Mate-D prefers a real image's own caption to one with an attribute swapped
    health = (
        "recall",
        "coverage",
        "clip_judge_agreement",
        *(f"d_rejects_swapped_{f}" for f in ("shape", "color", "size")),
    )
    for r in q:
        assert all(0 <= r[f"eval/{k}"] <= 1 for k in health), r


def test_compare_writes_a_self_contained_report(runs, tmp_path):
    for r in runs:
        torch.manual_seed(0)  # clip=tiny is `source: random`: the same CLIP for both runs' loads
        assert (
            ev.main(
                [
                    "--run",
                    str(r),
                    "--metric",
                    "fid,fidelity,diversity",
                    "--num-samples",
                    "16",
                    "--batch-size",
                    "8",
                    "--diversity-prompts",
                    "2",
                    "--diversity-seeds",
                    "2",
                ]
            )
            == 0
        )
        for t in ("0.5", "1.0"):  # a truncation sweep: the GAN's trade-off curve
            args = ["--run", str(r), "--metric", "fid,fidelity", "--num-samples", "16", "--truncation", t]
            assert ev.main(args) == 0
    torch.manual_seed(0)
    assert compare.main([str(r) for r in runs] + ["--out", str(tmp_path / "rep"), "--panel", "3"]) == 0
    md = (tmp_path / "rep" / "report.md").read_text()
    assert "N=16, features=toy-judge:toy-judge-" in md
    assert "| fid ↓ |" in md and "(n=2)" in md  # two seeds -> mean ± std
    assert "trainable params (M)" in md and "training img/s" in md
    figs = (
        "samples.png",
        "curves.png",
        "health.png",
        "curves_tasks.png",
        "nfe_fid.png",
        "nfe_fidelity.png",
        "tradeoff_fidelity.png",
    )
    for fig in figs:
        assert (tmp_path / "rep" / fig).stat().st_size > 1000, fig
    html = (tmp_path / "rep" / "report.html").read_text()
    assert "Trade-off: FID against prompt fidelity" in md
    assert "Training health" in md
    assert html.count("data:image/png;base64,") == 7 and 'src="samples.png"' not in html


def test_compare_rejects_a_non_run(tmp_path, capsys):
    assert compare.main([str(tmp_path), "--out", str(tmp_path / "o")]) == 2
    assert "is not a run directory" in capsys.readouterr().err


def test_curve_axes_say_which_way_is_better():
    from ldm_vs_gan.report.plots import ylabel

    # "fidelity" shares the prefix "fid" with FID; the curves once labelled it "lower better"
    assert ylabel("fidelity") == "fidelity (higher better)"
    assert ylabel("fid_toy") == "fid_toy (lower better)"
    assert ylabel("kid") == "kid (lower better)"


def test_compare_groups_runs_by_label(runs, tmp_path):
    """LABEL=RUN puts runs of one family in separate groups (one family at two budgets, or a
    variant): each label is a column, a sample-grid row and a curve colour of its own."""
    torch.manual_seed(0)
    args = [f"short={runs[0]}", f"long={runs[1]}", "--out", str(tmp_path / "rep"), "--panel", "2"]
    assert compare.main(args) == 0
    summ = json.loads((tmp_path / "rep" / "summary.json").read_text())
    assert {k: (v["family"], v["model"]) for k, v in summ.items()} == {
        runs[0].name: ("short", "galip"),
        runs[1].name: ("long", "galip"),
    }
    md = (tmp_path / "rep" / "report.md").read_text()
    assert "(short, seed 0" in md and "(long, seed 1" in md
    # a run directory whose path has '=' in it is a path, not a label
    odd = tmp_path / "lr=1e-4"
    odd.symlink_to(runs[0], target_is_directory=True)
    torch.manual_seed(0)
    assert compare.main([str(odd), "--out", str(tmp_path / "rep2"), "--panel", "2"]) == 0
    assert json.loads((tmp_path / "rep2" / "summary.json").read_text())["lr=1e-4"]["family"] == "galip"


def test_nfe_curve_leaves_out_the_trade_off_sweep():
    """An evaluation with guidance or truncation changed is a trade-off point, not an NFE point."""
    from ldm_vs_gan.report.collect import RunInfo

    def ev(fid, overrides, steps=None):
        prov = {"num_samples": 8, "extractor": {"name": "x"}, "data": {"source": "toy", "split": "heldout"},
                "sampling_overrides": overrides, "sampling": {"steps": steps}, "seconds_per_image": 0.1}  # fmt: skip
        return {"metrics": {"fid": fid}, "provenance": prov}

    gan = RunInfo(path=None, name="g", family="galip", seed=0)
    gan.evals = [ev(10.0, {}), ev(99.0, {"truncation": 0.5})]
    ldm = RunInfo(path=None, name="l", family="ldm", seed=0)
    ldm.evals = [ev(5.0, {"steps": 5}, 5), ev(4.0, {"steps": 50}, 50), ev(77.0, {"guidance": 7.0}, 20)]
    pts = compare.nfe_points([gan, ldm], "fid")
    assert [p[1] for p in pts["galip"]] == [10.0]
    assert sorted(p[1] for p in pts["ldm"]) == [4.0, 5.0]


def test_the_study_diagnosis_reads_generated_and_real_images_with_judge_and_clip(runs, tmp_path):
    import os
    import subprocess
    import sys

    from test_engine_support import REPO

    out = tmp_path / "diag.json"
    script = REPO / "experiments/toy_ldm_vs_galip/diagnose.py"
    cmd = [sys.executable, str(script), "--run", str(runs[0]), "--n", "16", "--out", str(out)]
    r = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert r.returncode == 0, r.stderr[-2000:]
    d = json.loads(out.read_text())
    n = d["n_prompts"]
    assert 0 < n <= 16 and d["images_seen"] == 32
    conf = d["shape_confusion_asked_by_judged"]
    assert sum(map(sum, conf)) == n and len(conf) == 4
    assert abs(sum(d["fake_shapes_judged"].values()) - 1) < 1e-3
    # the judge reads the real images it was trained on; every reading is a share
    for k in ("judge_shape_right", "clip_shape_right", "judge_color_right", "clip_color_right"):
        assert 0 <= d[f"{k}_fake"] <= 1 and 0 <= d[f"{k}_real"] <= 1
    for f in ("shape", "color", "size"):  # GALIP's Mate-D scores (image, caption) pairs
        assert 0 <= d[f"d_rejects_swapped_{f}_real"] <= 1 and 0 <= d[f"d_rejects_swapped_{f}_fake"] <= 1
    # it reads the final evaluation's very images: the judge's shape reading equals eval's
    e = tmp_path / "e.json"
    torch.manual_seed(0)
    assert (
        ev.main(["--run", str(runs[0]), "--metric", "fidelity", "--num-samples", "16", "--out", str(e)]) == 0
    )
    m = json.loads(e.read_text())["metrics"]
    assert m["fidelity/n_single"] == n
    assert d["judge_shape_right_fake"] == round(m["fidelity/single/shape"], 4)
    assert d["judge_color_right_fake"] == round(m["fidelity/single/color"], 4)
