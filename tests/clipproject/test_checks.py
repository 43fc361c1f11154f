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
    # The directory ships with the source (a checkout or an archive of it).
    assert (repo / "var" / "batch" / ".gitkeep").is_file()
    if (repo / ".git").exists():  # in a git checkout: tracked, not merely left over
        tracked = subprocess.run(
            ["git", "ls-files", "--error-unmatch", "var/batch/.gitkeep"], cwd=repo, capture_output=True, text=True
        )
        assert tracked.returncode == 0, tracked.stderr


def test_hardening_settings_come_from_the_environment(monkeypatch):
    from clipproject.settings import _clipcheck_from_environ

    monkeypatch.setenv("CLIPCHECK_DECODE_MEMORY_BUDGET_BYTES", "1073741824")
    monkeypatch.setenv("CLIPCHECK_ANALYSIS_RETENTION_DAYS", "none")
    monkeypatch.setenv("CLIPCHECK_FAILED_AUTH_RATE", "5/minute")
    assert {key: value for key, value in _clipcheck_from_environ().items() if key in (
        "DECODE_MEMORY_BUDGET_BYTES", "ANALYSIS_RETENTION_DAYS", "FAILED_AUTH_RATE")} == {
        "DECODE_MEMORY_BUDGET_BYTES": 1073741824, "ANALYSIS_RETENTION_DAYS": None, "FAILED_AUTH_RATE": "5/minute"}
    monkeypatch.setenv("CLIPCHECK_FAILED_AUTH_RATE", "None")
    assert _clipcheck_from_environ()["FAILED_AUTH_RATE"] is None
