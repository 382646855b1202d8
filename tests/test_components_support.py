"""Shared helpers of the components tests (not a test module: no test functions)."""

from pathlib import Path

CONFIGS = Path(__file__).resolve().parent.parent / "configs"
