"""Decoding memory is bounded: concurrent worst-case images stay within the budget,
and a JPEG in several scans reserves the coefficients libjpeg holds at full size.

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


MULTI_SCAN_JPEGS = ["progressive_jpeg", "progressive_jpeg_420", "progressive_cmyk_jpeg", "separate_scans_jpeg"]
# What a decode allocates besides the picture and the coefficients (libjpeg's
# tables and row buffers, Python objects).
DECODE_SLACK = 8 * MB


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/status")
@pytest.mark.parametrize("name", MULTI_SCAN_JPEGS)
def test_a_multi_scan_jpeg_reserves_what_its_decode_really_peaks_at(name):
    measured = measure(512 * MB, [name])
    (reserved,), peak = measured["reserved_bytes"], measured["peak_growth_bytes"]
    print(f"\n{name}, 6300 x 6300, {measured['file_bytes'][0] // 1024} KB: peak RSS growth {peak / MB:.1f} MB, "
          f"reserved {reserved / MB:.1f} MB")
    assert measured["results"] == [[788, 788]], measured
    assert measured["file_bytes"][0] < 1024 * 1024  # a small file: the amplification is the point
    # Covered, and not by a blanket over-reservation that would starve other decodes.
    assert peak <= reserved + DECODE_SLACK, measured
    assert reserved <= 1.1 * peak + DECODE_SLACK, measured


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/status")
def test_sixteen_progressive_jpegs_at_once_stay_within_the_memory_budget():
    budget = 512 * MB
    names = ["progressive_jpeg"] * 12 + ["separate_scans_jpeg"] * 2 + ["progressive_cmyk_jpeg"] * 2
    measured = measure(budget, names)
    print(f"\n{len(names)} concurrent 6300 x 6300 multi-scan JPEG decodes, "
          f"{sum(measured['file_bytes']) // 1024} KB of files: peak RSS growth "
          f"{measured['peak_growth_bytes'] / MB:.0f} MB, most reserved at once "
          f"{measured['peak_reserved_bytes'] / MB:.0f} MB, budget {budget // MB} MB")
    assert all(result == [788, 788] for result in measured["results"]), measured
    assert measured["peak_reserved_bytes"] <= budget
    assert measured["peak_growth_bytes"] <= budget + OVERHEAD, measured


def test_every_measured_case_is_a_known_case():
    assert {"gray16", "rgba8", "palette_alpha", *MULTI_SCAN_JPEGS} <= set(CASES)
