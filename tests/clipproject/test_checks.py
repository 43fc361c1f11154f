"""The project passes its own system checks (access policies for every routed view included)."""

from django.core.management import call_command


def test_the_project_passes_its_system_checks(settings, tmp_path):
    settings.CLIPCHECK = {**settings.CLIPCHECK, "BATCH_ROOT": str(tmp_path)}
    call_command("check", fail_level="WARNING")
