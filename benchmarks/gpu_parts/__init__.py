"""The parts of ``benchmarks/gpu_check.py``: the wheel bundle (``bundle``, made here by ``make
gpu-bundle``) and its installation on the GPU machine (``install``), the time-boxed runner and its
JSON summary (``runner``), and one module per measured part (``part_*``), each with
``run(ctx, rec)``."""
