"""Decoding memory is bounded: concurrent worst-case images stay within the budget.

Measured in a fresh Python process (``tests.support.decode_memory``) so that
the peak RSS is the decodes' own; figures in docs/operations.md.
"""

import json
import subprocess
import sys

import pytest

from tests.support.decode_memory import CASES
from tests.support.server import REPO_ROOT

MB = 1024 * 1024
# Interpreter, numpy and thread stacks allocated while the decodes run.
OVERHEAD = 64 * MB


def measure(budget, names):
    completed = subprocess.run(
        [sys.executable, "-m", "tests.support.decode_memory", str(budget), *names],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=300,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    return json.loads(completed.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/status")
def test_concurrent_worst_case_decodes_stay_within_the_memory_budget():
    budget = 512 * MB
    names = ["gray16", "gray16", "rgba8", "palette_alpha", "rgb16", "bilevel"]
    measured = measure(budget, names)
    print(f"\n{len(names)} concurrent 40 MP decodes ({', '.join(names)}), "
          f"{sum(measured['file_bytes']) // 1024} KB of files: "
          f"peak RSS growth {measured['peak_growth_bytes'] / MB:.0f} MB, budget {budget // MB} MB")
    # Every decode succeeded, reduced to a short side of at least JPEG_DRAFT_MIN_SIDE (448).
    assert all(isinstance(result, list) and 448 <= min(result) <= 452 for result in measured["results"]), measured
    assert max(measured["file_bytes"]) < 400 * 1024  # small files: the amplification is the point
    assert measured["peak_growth_bytes"] <= budget + OVERHEAD, measured


def test_every_measured_case_is_a_known_case():
    assert {"gray16", "rgba8", "palette_alpha"} <= set(CASES)
