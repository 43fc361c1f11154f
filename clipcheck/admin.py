"""Read-only admin for stored analyses and adaptations: they are a record, not something to edit
(an adaptation is promoted and rolled back by ``manage.py clip_adapt``)."""

from django.contrib import admin
from django.db.models import Model
from django.http import HttpRequest

from clipcheck.models import Adaptation, Analysis


class ReadOnlyAdminMixin:
    """Records are listed and inspected, never added, edited or deleted by hand."""

    def has_add_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False


@admin.register(Analysis)
class AnalysisAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = (
        "id", "created_at", "verdict", "similarity_score", "threshold", "match_quality", "confidence",
        "source", "cached", "model", "short_text", "subject_link",
    )
    list_filter = (
        "verdict", "match_quality", "source", "cached", "language", "model", ("created_at", admin.DateFieldListFilter),
    )
    search_fields = ("text",)
    date_hierarchy = "created_at"
    list_select_related = ("subject_type",)
    readonly_fields = [field.name for field in Analysis._meta.fields]

    @admin.display(description="text")
    def short_text(self, analysis: Analysis) -> str:
        return analysis.text if len(analysis.text) <= 80 else analysis.text[:79] + "…"

    @admin.display(description="concerns")
    def subject_link(self, analysis: Analysis) -> str:
        if analysis.subject_type_id is None:
            return "—"
        return f"{analysis.subject_type.name} {analysis.subject_id}"


@admin.register(Adaptation)
class AdaptationAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = (
        "model", "version", "active", "category_count", "accuracy", "ece", "trained_on", "created_by", "created_at",
    )
    list_filter = ("active", "model")
    readonly_fields = [field.name for field in Adaptation._meta.fields if field.name != "head"]
    exclude = ("head",)

    @admin.display(description="categories")
    def category_count(self, adaptation: Adaptation) -> int:
        return len(adaptation.categories)

    @admin.display(description="held-out accuracy (before → after)")
    def accuracy(self, adaptation: Adaptation) -> str:
        return _before_after(adaptation, "accuracy")

    @admin.display(description="held-out ECE (before → after)")
    def ece(self, adaptation: Adaptation) -> str:
        return _before_after(adaptation, "ece")

    @admin.display(description="learnt from")
    def trained_on(self, adaptation: Adaptation) -> int | str:
        return adaptation.labels.get("trained_on", "—")


def _before_after(adaptation: Adaptation, metric: str) -> str:
    row = adaptation.metrics.get("overall", {}).get(metric)
    if not row or row.get("before") is None or row.get("after") is None:
        return "—"
    return f"{row['before']:.4f} → {row['after']:.4f}"
