"""The transparency report in the admin: a period's figures as ``clip_transparency_report`` writes them.

``TransparencyReportViews(model_admin).get_urls()`` adds, under the moderation
decisions' admin, ``transparency/`` (``?period=2026-H2``, or ``since``/``until``
dates; ``&format=csv`` downloads the command's CSV). Whoever may view the
moderation decisions may read it; the figures come from
``listings.transparency_report``, the same code the command runs.
"""

import io
from collections.abc import Mapping
from datetime import UTC, datetime

from django.contrib.admin import ModelAdmin
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import URLPattern, path
from django.utils import timezone

from listings.transparency_report import period_bounds, transparency_report


def current_half_year(now: datetime | None = None) -> str:
    now = now or timezone.now()
    return f"{now.year}-H{1 if now.month <= 6 else 2}"


def report_period(query: Mapping[str, str]) -> tuple[datetime | None, datetime | None, str, str | None]:
    """``(since, until, label, error)`` from the query: a ``period``, or ``since``/``until`` dates (UTC)."""
    if query.get("since") or query.get("until"):
        try:
            since = datetime.fromisoformat(query.get("since", "")).replace(tzinfo=UTC)
            until = datetime.fromisoformat(query.get("until", "")).replace(tzinfo=UTC)
        except ValueError:
            return None, None, "", "since and until are dates like 2026-07-01."
        if until <= since:
            return None, None, "", "until must come after since."
        return since, until, f"{since.date()} – {until.date()}", None
    label = query.get("period") or current_half_year()
    try:
        since, until = period_bounds(label)
    except ValueError as exc:
        return None, None, label, str(exc)
    return since, until, label, None


class TransparencyReportViews:
    def __init__(self, model_admin: ModelAdmin) -> None:
        self.model_admin = model_admin
        self.admin_site = model_admin.admin_site

    def get_urls(self) -> list[URLPattern]:
        return [path("transparency/", self.admin_site.admin_view(self.report_view),
                     name="listings_moderationdecision_transparency")]

    def report_view(self, request: HttpRequest) -> HttpResponse:
        if not self.model_admin.has_view_permission(request):
            raise PermissionDenied
        since, until, label, error = report_period(request.GET)
        report = transparency_report(since=since, until=until) if error is None else None
        if report is not None and request.GET.get("format") == "csv":
            stream = io.StringIO()
            report.write_csv(stream)
            response = HttpResponse(stream.getvalue(), content_type="text/csv; charset=utf-8")
            response["Content-Disposition"] = f'attachment; filename="transparency-{label.replace(" ", "")}.csv"'
            return response
        context = {
            **self.admin_site.each_context(request),
            "title": "Transparency report",
            "subtitle": label,
            "opts": self.model_admin.model._meta,
            "period": label if not request.GET.get("since") else "",
            "error": error,
            "rows": list(report.rows()) if report is not None else [],
            "query": request.GET.urlencode(),
        }
        request.current_app = self.admin_site.name
        return TemplateResponse(request, "admin/listings/transparency_report.html", context)
