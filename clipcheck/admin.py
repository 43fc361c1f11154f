"""Read-only admin for stored analyses: they are a record, not something to edit."""

from django.contrib import admin

from clipcheck.models import Analysis


class ReadOnlyAdminMixin:
    """Records are listed and inspected, never added, edited or deleted by hand."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Analysis)
class AnalysisAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = (
        "id", "created_at", "verdict", "similarity_score", "threshold", "match_quality", "confidence",
        "source", "cached", "model", "short_text", "subject_link",
    )
    list_filter = ("verdict", "match_quality", "source", "cached", "model", ("created_at", admin.DateFieldListFilter))
    search_fields = ("text",)
    date_hierarchy = "created_at"
    list_select_related = ("subject_type",)
    readonly_fields = [field.name for field in Analysis._meta.fields]

    @admin.display(description="text")
    def short_text(self, analysis):
        return analysis.text if len(analysis.text) <= 80 else analysis.text[:79] + "…"

    @admin.display(description="concerns")
    def subject_link(self, analysis):
        if analysis.subject_type_id is None:
            return "—"
        return f"{analysis.subject_type.name} {analysis.subject_id}"
