"""The subprocess runner of the engine tests (no tests here): ``python tests/test_engine_support.py
CFG.yaml [CFG2.yaml ...]``, or under torchrun, trains each config on the stand-in data, handed to
``run`` explicitly (``support.engine.main``).

Importing it gives the helpers of ``support`` under their old names, for test modules that have
not moved to ``support`` yet.
"""

from __future__ import annotations

import sys

from support import standin_data
from support.engine import CONFIGS, REPO, RES, main, make_cfg, trainer_cfg, write_cfg

standin_build_loader = standin_data.build_loader
standin_heldout_batch = standin_data.heldout_batch

__all__ = [
    "CONFIGS",
    "REPO",
    "RES",
    "make_cfg",
    "standin_build_loader",
    "standin_heldout_batch",
    "trainer_cfg",
    "write_cfg",
]

if __name__ == "__main__":
    main(sys.argv[1:])
