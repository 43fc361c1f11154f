"""The project passes its own system checks (access policies for every routed view included)."""

import os

from django.core.management import call_command


def test_the_project_passes_its_system_checks(settings, tmp_path):
    settings.CLIPCHECK = {**settings.CLIPCHECK, "BATCH_ROOT": str(tmp_path)}
    call_command("check", fail_level="WARNING")


def test_a_fresh_checkout_has_the_default_batch_root():
    """The project's default BATCH_ROOT (var/batch) is part of the repository, so
    the first ``migrate`` of a fresh checkout does not warn clipcheck.W001."""
    import subprocess
    from pathlib import Path

    from clipproject import settings as project_settings

    repo = Path(project_settings.BASE_DIR)
    if "CLIPCHECK_BATCH_ROOT" not in os.environ:
        assert Path(project_settings.CLIPCHECK["BATCH_ROOT"]) == repo / "var" / "batch"
    tracked = subprocess.run(
        ["git", "ls-files", "--error-unmatch", "var/batch/.gitkeep"], cwd=repo, capture_output=True, text=True
    )
    assert tracked.returncode == 0, tracked.stderr
