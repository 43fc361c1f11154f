"""The stall watchdog ends a process that stopped making progress, even one whose GIL is held."""

import subprocess
import sys
import time
from pathlib import Path

import pytest

from clipcheck import watchdog

ROOT = Path(__file__).resolve().parents[2]


def run_python(code, timeout=60):
    started = time.monotonic()
    finished = subprocess.run(
        [sys.executable, "-c", f"from clipcheck.watchdog import StallWatchdog\n{code}"],
        cwd=ROOT, capture_output=True, text=True, timeout=timeout,
    )
    return finished, time.monotonic() - started


def test_no_progress_past_the_limit_ends_the_process_with_a_line_and_the_stacks():
    finished, seconds = run_python(
        "import time\n"
        "with StallWatchdog(0.5, what='the test job'):\n"
        "    time.sleep(30)\n"
    )
    assert finished.returncode == watchdog.EXIT_STATUS
    assert "the test job made no progress for 0.5 s" in finished.stderr
    assert 'File "<string>", line 4' in finished.stderr  # the stalled thread's stack
    assert seconds < 15


def test_a_process_whose_gil_is_held_in_native_code_still_ends():
    # ctypes.PyDLL keeps the GIL during the call: no Python thread runs again,
    # as when a forward stuck inside the runtime holds it.
    finished, seconds = run_python(
        "import ctypes\n"
        "with StallWatchdog(0.5, what='the test job'):\n"
        "    ctypes.PyDLL(None).sleep(60)\n",
    )
    assert finished.returncode == 1
    assert "Timeout" in finished.stderr and 'File "<string>", line 4' in finished.stderr
    assert "made no progress" not in finished.stderr  # the Python stage could not run
    assert 0.5 + watchdog.GRACE_SECONDS <= seconds < 0.5 + watchdog.GRACE_SECONDS + 20


def test_progress_rearms_the_limit_and_leaving_disarms_it():
    finished, _ = run_python(
        "import time\n"
        "with StallWatchdog(1.0, what='the test job') as watched:\n"
        "    for _ in range(8):\n"
        "        time.sleep(0.3)\n"
        "        watched.progress()\n"
        "time.sleep(1.5)\n"
        "print('finished')\n"
    )
    assert finished.returncode == 0, finished.stderr
    assert finished.stdout.strip() == "finished"


@pytest.mark.parametrize("seconds", [0, None])
def test_a_limit_of_zero_turns_it_off(seconds):
    with watchdog.StallWatchdog(seconds, what="nothing") as watched:
        watched.progress()
        assert watched._timer is None
