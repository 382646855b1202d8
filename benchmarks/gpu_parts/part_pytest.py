"""Part 1: the CUDA tests, ``pytest -m cuda tests/test_cuda.py``, with their counts and durations.

On a machine without CUDA they skip; the dry run sets ``LDM_VS_GAN_CUDA_TESTS_DEVICE=cpu`` so the
same tests run on the CPU instead (their own check, in the fast suite's time).
"""

from __future__ import annotations

import os
import sys
import xml.etree.ElementTree as ET

from gpu_parts.runner import run_logged

TESTS = "tests/test_cuda.py"


def counts(junit_xml) -> dict:
    suite = ET.parse(junit_xml).getroot()
    suite = suite if suite.tag == "testsuite" else suite.find("testsuite")
    n = {k: int(suite.get(k, 0)) for k in ("tests", "failures", "errors", "skipped")}
    n["passed"] = n["tests"] - n["failures"] - n["errors"] - n["skipped"]
    n["durations_s"] = {c.get("name"): round(float(c.get("time", 0)), 2) for c in suite.iter("testcase")}
    return n


def run(ctx, rec) -> None:
    xml = ctx.work / "pytest_cuda.xml"
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "cuda", TESTS]
    # only pytest's own plugins: a machine's third-party ones may not load under the pinned pytest
    env = dict(os.environ, PYTEST_DISABLE_PLUGIN_AUTOLOAD="1")
    if ctx.dry_run:
        env["LDM_VS_GAN_CUDA_TESTS_DEVICE"] = "cpu"
    rec["command"] = " ".join(cmd[2:])
    got = run_logged([*cmd, f"--junitxml={xml}"], ctx.logs / "pytest_cuda.log", ctx.left() - 5, ctx.repo, env)
    if xml.exists():
        rec.update(counts(xml))
    rec["pytest"] = got
    if got["returncode"] != 0 or not rec.get("passed"):
        raise AssertionError(f"pytest -m cuda: {got}, {rec.get('passed')} passed (log: pytest_cuda.log)")
