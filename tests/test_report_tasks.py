"""The comparison report's "Prompt fidelity by task" table (GenEval's breakdown, Ghosh et al. 2023),
from synthetic runs: one row per task from the toy evaluation's ``fidelity/...`` keys, families as
columns over seeds, the judge's held-out accuracy as the ceiling, and nothing without fidelity."""

from pathlib import Path

from ldm_vs_gan.report import render
from ldm_vs_gan.report.collect import RunInfo
from ldm_vs_gan.report.render import TASKS, task_tables

JUDGE = {
    "name": "toy-judge-abc",
    "sha256": "f" * 64,
    "heldout_accuracy": {
        "shape": 0.99,
        "color": 1.0,
        "size": 0.95,
        "count": 0.98,
        "relation": 0.97,
        "single_overall": 0.985,
        "two_overall": 0.9,
        "overall": 0.94,
    },
}


def _fidelity(base: float) -> dict:
    """The keys ``eval --metric fidelity`` writes (ToyJudge.fidelity), each ``base`` + a task offset."""
    keys = ["single/" + k for k in ("shape", "color", "size", "count", "overall", "strict")]
    keys += ["two/" + k for k in ("shape", "color", "size", "count", "relation", "overall", "strict")]
    m = {f"fidelity/{k}": base - 0.01 * i for i, k in enumerate(keys)}
    m.update({"fidelity": base, "fidelity/n_single": 10.0, "fidelity/n_two": 14.0, "fid": 3.0})
    return m


def _run(family: str, seed: int, metrics: dict, feature: str = "toy-judge:x", overrides=None) -> RunInfo:
    prov = {
        "num_samples": 24,
        "extractor": {"name": feature},
        "data": {"source": "toy", "split": "heldout"},
        "sampling_overrides": overrides or {},
        "judge": JUDGE,
    }
    ev = {"metrics": metrics, "provenance": prov}
    return RunInfo(Path("."), f"{family}-s{seed}", family, seed, evals=[ev])


def _cells(table) -> dict[str, list[str]]:
    _, _, rows = table
    return {r[0]: r[1:] for r in rows}


def test_rows_are_the_tasks_with_seeds_and_the_judges_ceiling():
    runs = [_run("ldm", s, _fidelity(0.8 + 0.1 * s)) for s in range(3)]
    runs += [_run("galip", s, _fidelity(0.3 + 0.01 * s)) for s in range(3)]
    ((title, header, rows),) = task_tables(runs)
    assert header == [
        "task",
        "galip",
        "ldm",
        "judge held-out accuracy (ceiling)",
        "difference (permutation test)",
    ]
    assert [r[0] for r in rows] == [label for label, _, _ in TASKS]
    assert (
        "N=24" in title
        and "toy-judge-abc (ffffffffffff)" in title
        and "10 one-object + 14 two-object" in title
    )
    cells = _cells((title, header, rows))
    # colour = single/color, the 2nd key: 0.8/0.9/1.0 - 0.01 -> mean 0.89, std 0.1 over 3 seeds
    assert cells["colour"][1].startswith("0.8900 ± 0.1000 [") and cells["colour"][1].endswith("(n=3)")
    assert cells["all prompts"][1].startswith("0.9000 ± 0.1000")
    ceiling = {label: c[2] for label, c in cells.items()}
    assert ceiling["colour"] == "1.0000" and ceiling["relation (position)"] == "0.9700"
    assert ceiling["counting: one object"] == ceiling["counting: two objects"] == "0.9800"
    assert ceiling["single object (shape + colour)"] == "0.9850" and ceiling["all prompts"] == "0.9400"
    assert ceiling["attribute binding (strict: + sizes, count)"] == "-"  # the judge has no such number
    assert cells["two objects (both + relation)"][3] == "p = 0.10"  # fully separated 3 vs 3


def test_one_number_per_run_and_groups_by_sampling():
    """A run evaluated twice at one setting (two FID spaces) counts once; another sampling setting
    is another table."""
    runs = [_run("ldm", s, _fidelity(0.5 + 0.1 * s)) for s in range(2)]
    runs[0].evals.append(
        {
            **runs[0].evals[0],
            "provenance": {**runs[0].evals[0]["provenance"], "extractor": {"name": "clip:run"}},
        }
    )
    runs.append(_run("ldm", 9, _fidelity(0.2), overrides={"steps": 10}))
    tables = task_tables(runs)
    assert len(tables) == 2
    by_title = {t[0]: t for t in tables}
    default = next(t for title, t in by_title.items() if "sampling=defaults" in title)
    assert _cells(default)["all prompts"][0].endswith("(n=2)")  # 2 runs, not 3 evaluations
    assert len(default[1]) == 3  # task, ldm, ceiling: no test column for one family
    steps = next(t for title, t in by_title.items() if "steps=10" in title)
    assert _cells(steps)["all prompts"][0] == "0.2000"


def test_missing_tasks_are_left_out_and_no_fidelity_no_section(tmp_path):
    only_single = {"fidelity": 0.7, "fidelity/single/color": 0.8, "fidelity/two/relation": float("nan")}
    ((_, _, rows),) = task_tables([_run("ldm", 0, only_single)])
    assert [r[0] for r in rows] == ["colour", "all prompts"]  # NaN: no two-object prompt was asked
    no_fid = [_run("ldm", 0, {"fid": 3.0}), _run("galip", 0, {"fid": 4.0})]
    assert task_tables(no_fid) == []
    md, html = render.write(tmp_path, no_fid, {}, [])
    assert "Prompt fidelity by task" not in md.read_text()
    md, html = render.write(tmp_path, [_run("ldm", 0, _fidelity(0.8)), *no_fid], {}, [])
    text = md.read_text()
    assert "## Prompt fidelity by task" in text and "| colour | - | 0.7900 | 1.0000 | - |" in text
    assert "<h2>Prompt fidelity by task</h2>" in html.read_text()


def test_every_task_reads_keys_the_toy_judge_writes(tmp_path):
    """The table's keys against a real (untrained) ToyJudge: ``fidelity`` as ``eval`` stores it and
    ``heldout_report`` as the judge's meta.json holds it."""
    import torch

    from ldm_vs_gan.toy import world
    from ldm_vs_gan.toy.judge import JudgeNet, ToyJudge, heldout_report

    weights = tmp_path / "judge.bin"
    weights.write_bytes(b"x")
    torch.manual_seed(0)
    judge = ToyJudge(JudgeNet(resolution=32, width=4), 32, {"key": "t"}, weights)
    captions = ["a small red circle", "a small red circle left of a large blue square"] * 2
    images = torch.randint(0, 256, (4, 3, 32, 32), dtype=torch.uint8)
    written = {"fidelity" if k == "overall" else f"fidelity/{k}" for k in judge.fidelity(images, captions)}
    heldout = heldout_report(judge, images, [world.parse_caption(c) for c in captions])
    for _, key, judge_key in TASKS:
        assert key in written, key
        assert judge_key is None or judge_key in heldout, judge_key
    assert set(JUDGE["heldout_accuracy"]) == set(heldout)  # the synthetic judge above is faithful
