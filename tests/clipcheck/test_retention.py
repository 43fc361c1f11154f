"""API analyses are kept ANALYSIS_RETENTION_DAYS days; everything else is kept."""

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from clipcheck import retention
from clipcheck.models import Analysis
from tests.support.clip_settings import set_clip_settings

pytestmark = pytest.mark.django_db


def analysis(source, days_old):
    row = Analysis.objects.create(
        image_sha256="0" * 64, text="red", text_sha256="1" * 64, similarity_score=0.3, threshold=0.25,
        verdict="match", confidence="low", match_quality="good", model="m", source=source, duration_ms=1.0,
    )
    Analysis.objects.filter(pk=row.pk).update(created_at=timezone.now() - timedelta(days=days_old))
    return row.pk


def prune(*args):
    out = StringIO()
    call_command("clip_prune_analyses", *args, stdout=out)
    return out.getvalue()


def test_only_api_analyses_past_the_retention_period_are_deleted(settings, monkeypatch):
    set_clip_settings(settings, ANALYSIS_RETENTION_DAYS=30)
    monkeypatch.setattr(retention, "CHUNK", 2)  # several transactions
    expired = [analysis("api", 31) for _ in range(5)]
    recent = analysis("api", 29)
    kept = [analysis(source, 400) for source in ("batch", "upload", "admin", "audit")]

    assert "Would delete 5 API analysis(es) older than 30 day(s)." in prune("--dry-run")
    assert Analysis.objects.count() == 10
    assert "Deleted 5 API analysis(es)" in prune()
    assert set(Analysis.objects.values_list("pk", flat=True)) == {recent, *kept}
    assert not Analysis.objects.filter(pk__in=expired).exists()


def test_days_on_the_command_line_override_the_setting(settings):
    set_clip_settings(settings, ANALYSIS_RETENTION_DAYS=30)
    analysis("api", 10)
    assert "Deleted 1 API analysis(es) older than 7 day(s)." in prune("--days", "7")


def test_retention_none_keeps_everything(settings):
    set_clip_settings(settings, ANALYSIS_RETENTION_DAYS=None)
    analysis("api", 5000)
    assert "nothing deleted" in prune()
    assert Analysis.objects.count() == 1


@pytest.mark.parametrize("days", ["0", "-3", "week"])
def test_days_must_be_positive(days):
    with pytest.raises(CommandError):
        prune("--days", days)
