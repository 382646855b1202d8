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
        "nfe_fid.png",
        "nfe_fidelity.png",
        "tradeoff_fidelity.png",
    )
    for fig in figs:
        assert (tmp_path / "rep" / fig).stat().st_size > 1000, fig
    html = (tmp_path / "rep" / "report.html").read_text()
    assert "Trade-off: FID against prompt fidelity" in md
    assert "Training health" in md
    assert html.count("data:image/png;base64,") == 6 and 'src="samples.png"' not in html


def test_compare_rejects_a_non_run(tmp_path, capsys):
    assert compare.main([str(tmp_path), "--out", str(tmp_path / "o")]) == 2
    assert "is not a run directory" in capsys.readouterr().err


def test_curve_axes_say_which_way_is_better():
    from ldm_vs_gan.report.plots import ylabel

    # "fidelity" shares the prefix "fid" with FID; the curves once labelled it "lower better"
    assert ylabel("fidelity") == "fidelity (higher better)"
    assert ylabel("fid_toy") == "fid_toy (lower better)"
    assert ylabel("kid") == "kid (lower better)"
