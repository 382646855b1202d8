"""The comparison tables carry a bootstrap interval per cell and, for two families, the exact
permutation test of their difference (metrics/stats.py), computed from the runs' eval JSONs."""

from pathlib import Path

from ldm_vs_gan.report.collect import RunInfo
from ldm_vs_gan.report.render import metrics_tables


def _run(family: str, seed: int, fid: float, fidelity: float) -> RunInfo:
    prov = {
        "num_samples": 256,
        "extractor": {"name": "toy-judge:x"},
        "data": {"source": "toy", "split": "heldout"},
    }
    return RunInfo(
        Path("."),
        f"{family}-s{seed}",
        family,
        seed,
        evals=[{"metrics": {"fid": fid, "fidelity": fidelity}, "provenance": prov}],
    )


def test_cells_have_intervals_and_two_families_get_a_permutation_test():
    runs = [_run("ldm", s, 10.0 + s, 0.8) for s in range(3)] + [
        _run("galip", s, 50.0 + s, 0.8) for s in range(3)
    ]
    ((title, header, rows),) = metrics_tables(runs)
    assert header == ["metric", "galip", "ldm", "difference (permutation test)"]
    fid = next(r for r in rows if r[0].startswith("fid "))
    assert fid[2].startswith("11.00 ± 1.00 [") and fid[2].endswith("(n=3)")
    lo, hi = (float(x) for x in fid[2].split("[")[1].split("]")[0].split(", "))
    assert 10.0 <= lo <= 11.0 <= hi <= 12.0  # the interval of the mean lies within the seeds' range
    assert fid[3] == "p = 0.10"  # fully separated 3 vs 3: the smallest exact two-sided p, 2/20
    same = next(r for r in rows if r[0].startswith("fidelity"))
    assert same[3] == "p = 1.00"
