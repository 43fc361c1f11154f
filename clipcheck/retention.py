"""Retention of API analyses (``manage.py clip_prune_analyses``).

Every anonymous ``/clip/analyze`` call stores one ``Analysis`` row (its
verdict answers the same request again without the model). Nothing else
refers to those rows, so they are kept ``CLIPCHECK["ANALYSIS_RETENTION_DAYS"]``
days and then deleted; analyses of uploads, audits, batches and the admin
are records of decisions and are kept.
"""

from datetime import datetime, timedelta

from django.db import transaction
from django.utils import timezone

from clipcheck.models import Analysis
from clipcheck.settings import clip_settings

PRUNED_SOURCES = (Analysis.Source.API,)
# Rows deleted per transaction: short locks on a busy table.
CHUNK = 1000


def analyses_prune(*, days: int | None = None, dry_run: bool = False, now: datetime | None = None) -> int:
    """Delete API analyses older than ``days`` (default ANALYSIS_RETENTION_DAYS);
    returns how many were (or, in a dry run, would be) deleted. None keeps all."""
    days = clip_settings.ANALYSIS_RETENTION_DAYS if days is None else days
    if days is None:
        return 0
    cutoff = (now or timezone.now()) - timedelta(days=days)
    expired = Analysis.objects.filter(source__in=PRUNED_SOURCES, created_at__lt=cutoff)
    if dry_run:
        return expired.count()
    deleted = 0
    while True:
        with transaction.atomic():
            chunk = list(expired.order_by("pk").values_list("pk", flat=True)[:CHUNK])
            if not chunk:
                return deleted
            deleted += Analysis.objects.filter(pk__in=chunk).delete()[0]
