"""The fast inner loop: tests that need a missing service are skipped with a
message on a developer's machine, and fail under CI (CI=1)."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.support import services

REPO = Path(__file__).resolve().parents[1]

MARKED_TESTS = textwrap.dedent("""
    import pytest

    @pytest.mark.redis
    def test_needs_redis():
        pass

    @pytest.mark.postgres
    def test_needs_postgres():
        pass

    def test_needs_nothing():
        pass

    def test_uses_the_browser(browser_page):
        pass
""")


# The suite's wiring of the gate (tests/conftest.py), without the suite's fixtures.
GATE_CONFTEST = textwrap.dedent("""
    import pytest

    from tests.support import services


    def pytest_collection_modifyitems(config, items):
        services.services_mark(items)


    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_setup(item):
        services.services_require(item)
""")


def run_pytest(tmp_path, *args, **environ):
    """Runs the marked tests above through the gate, services pointed at closed ports."""
    (tmp_path / "test_marked.py").write_text(MARKED_TESTS)
    (tmp_path / "conftest.py").write_text(GATE_CONFTEST)
    env = {key: value for key, value in os.environ.items() if key != "CI"}
    env.update({
        "TEST_REDIS_URL": "redis://127.0.0.1:1/0",
        "TEST_POSTGRES_URL": "postgres://postgres@127.0.0.1:1/postgres",
        "PYTHONPATH": str(REPO),
        **environ,
    })
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-c", str(REPO / "pytest.ini"),
         "--rootdir", str(REPO), "-ra", *args, str(tmp_path / "test_marked.py")],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300,
    )


def test_missing_services_skip_with_a_message_outside_ci(tmp_path):
    # -m "not browser" also shows that a test using the browser fixture carries the marker.
    result = run_pytest(tmp_path, "-m", "not browser")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "needs Redis at redis://127.0.0.1:1/0 (not reachable here; CI runs it)" in result.stdout
    assert "needs PostgreSQL at postgres://postgres@127.0.0.1:1/postgres" in result.stdout
    assert "-m 'not redis'" in result.stdout
    summary = result.stdout.strip().splitlines()[-1]
    assert "1 passed, 2 skipped, 1 deselected" in summary, summary


class FakeItem:
    def __init__(self, *markers):
        self.markers = set(markers)

    def get_closest_marker(self, name):
        return name if name in self.markers else None


@pytest.mark.parametrize("ci, outcome", [({}, pytest.skip.Exception), ({"CI": "1"}, pytest.fail.Exception),
                                         ({"CI": "true"}, pytest.fail.Exception), ({"CI": "0"}, pytest.skip.Exception)])
def test_the_gate_follows_the_ci_variable(ci, outcome):
    with pytest.raises(outcome, match="Celery"):
        services.services_require(FakeItem("celery"), available=lambda name: False, environ=ci)


def test_present_services_and_unmarked_tests_pass_the_gate():
    services.services_require(FakeItem("redis", "browser"), available=lambda name: True, environ={"CI": "1"})
    services.services_require(FakeItem(), available=lambda name: False, environ={"CI": "1"})
