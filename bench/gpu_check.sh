#!/usr/bin/env bash
# On a CUDA host: correctness against float32 and images/s, in under 5 minutes.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-.venv/bin/python}
timeout 300 "$PYTHON" -m bench.gpu_check --device "${CLIPCHECK_DEVICE:-cuda}" "$@"
