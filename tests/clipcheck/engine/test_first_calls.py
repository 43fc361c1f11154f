"""A cold runtime whose first forwards come from its threads at once never hangs.

OpenVINO's binding initialises its numpy conversions on first use behind two
locks; two threads making their first forward together took them in
opposite orders and hung the process with the GIL held (the README's demo
hung in 7 of 13 fresh runs). Each process here is a fresh runtime whose
first image and text batches arrive together; before the runtime primed
itself on the loading thread, 3 of 12 such processes hung.
"""

import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.support.runtime import RUNTIME_CACHE_DIR

PROCESSES = 20
AT_ONCE = 4
# A fresh process loads in about 1.6 s here; the deadline leaves room for a busy machine.
DEADLINE_SECONDS = 60
ROOT = Path(__file__).resolve().parents[3]


def first_calls(runtime):
    """Run one fresh process; its exit status and output."""
    command = [sys.executable, "-m", "tests.support.first_calls", runtime, RUNTIME_CACHE_DIR, str(DEADLINE_SECONDS)]
    try:
        done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=DEADLINE_SECONDS + 30)
    except subprocess.TimeoutExpired as expired:  # faulthandler could not even end it
        return -1, f"killed after {expired.timeout} s"
    return done.returncode, done.stdout + done.stderr


@pytest.mark.parametrize("runtime", ["openvino", "torch"])
def test_fresh_runtimes_answer_their_first_concurrent_batches(runtime):
    # The first process converts the checkpoint into the cache the others load.
    returncode, output = first_calls(runtime)
    assert returncode == 0, output
    with ThreadPoolExecutor(max_workers=AT_ONCE) as pool:
        outcomes = list(pool.map(lambda _: first_calls(runtime), range(PROCESSES)))
    hung = [output for returncode, output in outcomes if returncode != 0]
    print(f"{runtime}: {PROCESSES - len(hung)} of {PROCESSES} fresh runtimes answered their first concurrent batches")
    assert not hung, f"{len(hung)} of {PROCESSES} fresh runtimes did not answer; the first:\n{hung[0][-6000:]}"
    assert all("answered" in output for _, output in outcomes)
