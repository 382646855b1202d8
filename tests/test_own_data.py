"""One's own captioned shards end to end, through the CLI as the README's "Your own data" gives
it: a data set the test writes (not the toy world: other sizes, repeated captions, a 24-image
held-out split), the CLIP and VAE stages trained on it, the LDM and GALIP on top of them
(`clip=run`, `autoencoder=run`) with the quick evaluation on, `eval` on the held-out shards and
`compare` with learning curves. Tiny sizes: seconds per run."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from promise_support import GALIP_TINY, LDM_TINY, env, train
from support.engine import REPO
from support.own_data import write_own_data
from test_stage_support import TINY

SMOKE = [
    "trainer=smoke",
    "trainer.max_images=32",
    "trainer.sample_every=32",
    "trainer.eval_every=32",
    "trainer.ckpt_every=32",
    "trainer.eval.n=24",
    "trainer.eval.batch_size=12",
    "logger=none",
]


def _ok(proc):
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def _evals(run) -> list[dict]:
    rows = [json.loads(ln) for ln in (run / "metrics.jsonl").read_text().splitlines()]
    return [r for r in rows if any(k.startswith("eval/") for k in r)]


def _cli(module: str, args: list[str]) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", f"ldm_vs_gan.{module}", *args]
    return subprocess.run(cmd, cwd=REPO, env=env(), capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("own")
    shards = write_own_data(root / "data")
    data = [
        "data=laion",
        f'data.shards="{shards["shards"]}"',  # a brace pattern, quoted as the README shows
        f"data.heldout_shards={shards['heldout_shards']}",
        "data.resolution=32",
        "data.min_size=0",
    ]
    r = {k: root / k for k in ("clip", "vae", "ldm", "galip")}
    stage_vae = [
        "model.arch.channels=[8,16,16]",
        "model.arch.norm_num_groups=4",
        "model.arch.mid_block_attention=false",
    ]
    _ok(train(["model=clip", *data, *TINY["clip"], *SMOKE, f"run_dir={r['clip']}"]))
    _ok(train(["model=vae", *data, *stage_vae, *SMOKE, f"run_dir={r['vae']}"]))
    components = ["clip=run", f"clip.path={r['clip']}", "autoencoder=run", f"autoencoder.path={r['vae']}"]
    _ok(train([*LDM_TINY, *data, *components, *SMOKE, f"run_dir={r['ldm']}"]))
    _ok(train([*GALIP_TINY, *data, *components[:2], *SMOKE, f"run_dir={r['galip']}"]))
    return {"root": root, "data": data, **r}


def test_the_clip_stage_counts_retrieval_by_caption_text(runs):
    ev = _evals(runs["clip"])[-1]
    assert ev["eval/distinct_captions"] == 4.0  # 24 held-out captions, 4 distinct
    for k in ("eval/retrieval_top1_text", "eval/zeroshot_top1", "eval/retrieval_top1_exact"):
        assert 0.0 <= ev[k] <= 1.0, k


def test_both_families_log_learning_curves_on_their_own_data(runs):
    for fam in ("ldm", "galip"):
        ev = _evals(runs[fam])[-1]
        assert ev["eval/quick_n"] == 24 and ev["eval/fid_clip"] >= 0 and 0 <= ev["eval/clip_score"] <= 100


def test_eval_uses_the_held_out_shards_in_the_runs_clip_space(runs):
    out = runs["root"] / "ldm_eval.json"
    proc = _ok(_cli("eval", ["--run", str(runs["ldm"]), "--metric", "fid,kid,clip_score", "--out", str(out)]))
    assert "fid: " in proc.stdout and "kid: " in proc.stdout
    res = json.loads(out.read_text())
    prov = res["provenance"]["data"]
    assert prov["source"] == "heldout" and "first 24" in prov["selection"] and "sha256" in prov["selection"]
    assert "no Inception weights" in prov["feature_choice"]
    assert res["metrics"]["kid_subset_size"] == 12  # 24 samples: subsets of half, so they differ
    assert res["metrics"]["kid_std"] > 0


def test_eval_on_other_shards_and_kid_refused_on_too_few(runs, tmp_path):
    other = write_own_data(tmp_path / "other", n_train=8, n_heldout=12, seed=1)
    args = [
        "--run",
        str(runs["galip"]),
        "--shards",
        other["heldout_shards"],
        "--out",
        str(tmp_path / "o.json"),
    ]
    proc = _cli("eval", [*args, "--metric", "kid"])
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "KID needs at least 20" in proc.stderr
    _ok(_cli("eval", [*args, "--metric", "fid"]))
    prov = json.loads((tmp_path / "o.json").read_text())["provenance"]["data"]
    assert prov["source"] == "shards" and prov["split"].startswith("--shards")


def test_compare_writes_learning_curves(runs):
    out = runs["root"] / "report"
    _ok(_cli("compare", [str(runs["ldm"]), str(runs["galip"]), "--out", str(out)]))
    assert (out / "curves.png").is_file() and (out / "report.md").is_file()


def test_toy_clip_on_other_data_is_refused_with_the_recipe(runs):
    proc = train([*LDM_TINY, *runs["data"], "clip=toy", *SMOKE, f"run_dir={runs['root'] / 'x'}"])
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "clip.source=toy is the toy world's CLIP" in proc.stderr and "clip=run clip.path=" in proc.stderr


def test_a_filter_that_drops_everything_is_said_before_training(runs):
    bad = [a for a in runs["data"] if not a.startswith("data.min_size")] + ["data.min_size=64"]
    proc = train([*LDM_TINY, *bad, *SMOKE, f"run_dir={runs['root'] / 'y'}"])
    assert proc.returncode == 2 and "data.min_size=64" in proc.stderr and "lower data.min_size" in proc.stderr
    assert not (runs["root"] / "y" / "checkpoints").exists()


def test_precomputed_data_is_refused_for_a_family_that_trains_on_images(runs):
    proc = train(
        [*GALIP_TINY, *runs["data"], "data.precomputed=true", *SMOKE, f"run_dir={runs['root'] / 'z'}"]
    )
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr[-2000:]
    assert "data.precomputed=true holds latents" in proc.stderr
