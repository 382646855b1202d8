#!/usr/bin/env bash
# The GPU check with the machine's python3 (the one that holds PyTorch there); arguments pass through.
PYTHONUNBUFFERED=1 exec python3 "$(dirname "$0")/gpu_check.py" "$@"
