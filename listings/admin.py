"""The moderation queue: listings with their CLIP scores, and the review queue.

Actions only parse the selection, call a service and report counts. Markup
lives in ``templates/admin/listings/`` and ``static/listings/admin.css``.
Approving, rejecting and flagging need the ``listings.moderate_listing``
permission; re-running the check needs ``change``.
"""

import mimetypes

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponse, HttpResponseRedirect
from django.template.loader import render_to_string
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.timesince import timesince

from clipcheck import scoring
from clipcheck.admin import ReadOnlyAdminMixin
from clipcheck.errors import ClipcheckError
from clipcheck.images import decode_image
from clipcheck.models import Analysis
from clipcheck.reasons import reason_display, reason_label
from clipcheck.selectors import analyses_for_subject
from clipcheck.settings import clip_settings
from clipcheck.verdicts import suggestion
from listings import selectors, services
from listings.admin_review import ReviewViews, listing_id_parse
from listings.admin_transparency import TransparencyReportViews
from listings.errors import StorageFull
from listings.models import (
    FORMAT_SUFFIXES,
    Listing,
    ListingCheckFailure,
    ListingPhoto,
    ModerationDecision,
    ReviewQueueItem,
    StatementSubmission,
)
from listings.review import review_held_by_others, review_reason_codes
from listings.similarity import PHOTO_REUSED, listings_search
from listings.uploads import field_file_write, stored_photos_delete

Status = Listing.Status

STYLESHEET = "listings/admin.css"


def quality_badge(score, threshold=None):
    """A score with its quality band (relative to the check's threshold) as a badge and bar (colours in the stylesheet)."""
    if score is None:
        return render_to_string("admin/listings/score_badge.html", {"quality": None})
    return render_to_string("admin/listings/score_badge.html", {
        "quality": scoring.match_quality(score, threshold),
        "score": f"{score:.3f}",
        "percent": round(min(max(score, 0.0), 1.0) * 100),
    })


def image_url(listing):
    return reverse("admin:listings_listing_image", args=[listing.pk])


class DecodedImageFormMixin:
    """A changed ``image`` goes through clipcheck's one decoder and gets a
    generated name; ``image_decoded`` receives the decoded image's hash."""

    def clean_image(self):
        upload = self.cleaned_data.get("image")
        if "image" not in self.changed_data or not upload:
            return upload
        upload.seek(0)
        try:
            decoded = decode_image(upload.read(clip_settings.MAX_UPLOAD_BYTES + 1))
        except ClipcheckError as exc:
            raise forms.ValidationError(exc.message, code=exc.code)
        upload.seek(0)
        # Only the suffix of the name matters to upload_to; take it from
        # the decoded format, not the client.
        upload.name = f"upload.{FORMAT_SUFFIXES.get(decoded.format, 'bin')}"
        self.image_decoded(sha256=decoded.sha256)
        return upload


class ListingAdminForm(DecodedImageFormMixin, forms.ModelForm):
    """Images are decoded by clipcheck's one decoder and stored under a generated name."""

    class Meta:
        model = Listing
        fields = ["title", "description", "category", "price", "image"]

    image_sha256 = None

    def image_decoded(self, *, sha256):
        self.image_sha256 = sha256


class QualityBandFilter(admin.SimpleListFilter):
    title = "quality band"
    parameter_name = "quality"

    def lookups(self, request, model_admin):
        return [(label, label) for label, _ in scoring.quality_bands()]

    def queryset(self, request, queryset):
        if self.value():
            return queryset.filter(match_quality=self.value())
        return queryset


class CheckedFilter(admin.SimpleListFilter):
    title = "CLIP check"
    parameter_name = "checked"

    def lookups(self, request, model_admin):
        return [("yes", "Checked"), ("no", "Unchecked")]

    def queryset(self, request, queryset):
        if self.value() in ("yes", "no"):
            return queryset.filter(checked_at__isnull=self.value() == "no")
        return queryset


def reason_code_choices():
    return [("", "—")] + [(code, reason_label(code)) for code in review_reason_codes()]


class PhotoReusedFilter(admin.SimpleListFilter):
    """Listings whose photo another listing already shows (the photo_reused reason)."""

    title = "photo reused"
    parameter_name = "photo_reused"

    def lookups(self, request, model_admin):
        return [("yes", "Photo reused")]

    def queryset(self, request, queryset):
        if self.value() == "yes":
            return selectors.listings_with_reason(listings=queryset, code=PHOTO_REUSED)
        return queryset


class SearchForm(forms.Form):
    """The admin's catalogue search: a text or a photo."""

    text = forms.CharField(required=False, max_length=1000, help_text="Describe what the photos should show.")
    photo = forms.FileField(required=False, help_text="Or find the listings whose photos look like this one.")
    status = forms.MultipleChoiceField(choices=Status.choices, required=False, widget=forms.CheckboxSelectMultiple)
    k = forms.IntegerField(min_value=1, max_value=100, initial=20, label="results")

    def clean(self):
        cleaned = super().clean()
        if bool(cleaned.get("text", "").strip()) == bool(cleaned.get("photo")):
            raise forms.ValidationError("Give either a text or a photo.")
        photo = cleaned.get("photo")
        if photo:
            try:
                cleaned["image"] = decode_image(photo.read(clip_settings.MAX_UPLOAD_BYTES + 1))
            except ClipcheckError as exc:
                raise forms.ValidationError(exc.message, code=exc.code)
        return cleaned


class RejectForm(forms.Form):
    reason_code = forms.ChoiceField(choices=reason_code_choices, required=False, help_text="Recorded with the decision.")
    note = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3, "cols": 60}),
        required=False,
        help_text="Why: recorded with the decision and shown to whoever looks next.",
    )


class ModerationDecisionInline(admin.TabularInline):
    model = ModerationDecision
    extra = 0
    can_delete = False
    fields = (
        "decided_at", "moderator", "from_status", "to_status", "reason", "note", "title_score",
        "description_score", "threshold", "sampled", "undone_at",
    )
    readonly_fields = fields

    @admin.display(description="reason")
    def reason(self, decision):
        return decision.reason_label or "—"

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


class ModerationActionsMixin:
    """Approve / reject / flag, shared by the listing changelist and the review queue."""

    def has_moderate_permission(self, request):
        return request.user.has_perm("listings.moderate_listing")

    @admin.action(description="Approve the selected listings", permissions=["moderate"])
    def approve_selected(self, request, queryset):
        held = review_held_by_others(listings=queryset, moderator=request.user)
        changed = services.listings_decide(listings=list(queryset), moderator=request.user, to_status=Status.APPROVED)
        self.message_user(request, f"Approved {changed} listing(s); {queryset.count() - changed} left as they were"
                          f"{held_note(held)}.")

    @admin.action(description="Reject the selected listings…", permissions=["moderate"])
    def reject_selected(self, request, queryset):
        # Like delete_selected: the first post shows a confirmation page that
        # asks for a note; its own post (post=yes) records the decision.
        form = RejectForm(request.POST if request.POST.get("post") == "yes" else None)
        if form.is_bound and form.is_valid():
            held = review_held_by_others(listings=queryset, moderator=request.user)
            changed = services.listings_decide(
                listings=list(queryset), moderator=request.user, to_status=Status.REJECTED,
                note=form.cleaned_data["note"], reason_code=form.cleaned_data["reason_code"],
            )
            self.message_user(request, f"Rejected {changed} listing(s); {queryset.count() - changed} left as they were"
                              f"{held_note(held)}.")
            return None
        context = {
            **self.admin_site.each_context(request),
            "title": "Reject listings",
            "subtitle": None,
            "opts": self.model._meta,
            "queryset": queryset,
            "form": form,
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
            "action_name": "reject_selected",
            "media": self.media,
        }
        request.current_app = self.admin_site.name
        return TemplateResponse(request, "admin/listings/reject_confirmation.html", context)

    @admin.action(description="Flag mismatches for manual review", permissions=["moderate"])
    def flag_mismatches(self, request, queryset):
        listings = list(queryset)
        flagged = services.listings_flag_mismatches(listings=listings, moderator=request.user)
        self.message_user(
            request, f"Flagged {flagged} listing(s) for review; {len(listings) - flagged} left as they were."
        )


def held_note(held):
    return f" ({held} held by another moderator)" if held else ""


def reasons_html(listing, *, empty="no reasons: clean match", compact=False):
    """The listing's reasons in words (``clipcheck.reasons``); ``compact``: labels only, the sentence on hover."""
    if not listing.is_checked:
        return "—"
    reasons = [reason for reason in listing.reasons or [] if isinstance(reason, dict)]
    threshold = listing.checked_threshold
    return render_to_string("admin/listings/reasons.html", {
        "reasons": [reason_display(reason, threshold=threshold) for reason in reasons],
        # What the seller was told, in the seller's language; the reasons above are in the moderator's.
        "suggestion": None if compact else suggestion(reasons, language=listing.language), "empty": empty,
        "compact": compact,
    })


class ListingPhotoForm(DecodedImageFormMixin, forms.ModelForm):
    """A replaced photo goes through the one decoder and gets a generated name."""

    class Meta:
        model = ListingPhoto
        fields = ["image"]

    def image_decoded(self, *, sha256):
        self.instance.image_sha256 = sha256


class ListingPhotoInline(admin.TabularInline):
    """The listing's photos. The primary one (position 0) is edited as the
    listing's image; replacing another re-checks the listing."""

    model = ListingPhoto
    form = ListingPhotoForm
    extra = 0
    can_delete = False
    fields = ("position", "image", "image_sha256")
    readonly_fields = ("position", "image_sha256")

    def has_add_permission(self, request, obj=None):
        return False

    def get_queryset(self, request):
        return super().get_queryset(request).filter(position__gt=0)


@admin.register(Listing)
class ListingAdmin(ModerationActionsMixin, admin.ModelAdmin):
    form = ListingAdminForm
    list_display = (
        "thumbnail", "title", "status", "title_score_badge", "description_score_badge", "reasons_summary", "category",
        "price", "checked_at",
    )
    list_display_links = ("thumbnail", "title")
    list_filter = ("status", QualityBandFilter, CheckedFilter, PhotoReusedFilter, "category", "language")
    search_fields = ("title", "description", "category")
    list_select_related = ()
    list_per_page = 50
    actions = ["recheck_selected", "flag_mismatches", "approve_selected", "reject_selected"]
    inlines = [ListingPhotoInline, ModerationDecisionInline]

    class Media:
        css = {"all": [STYLESHEET]}
    readonly_fields = (
        "image_preview", "status", "title_score_badge", "description_score_badge", "clip_verdict", "match_quality",
        "reasons_list",
        "checked_at", "checked_model", "image_sha256", "moderated_by", "moderated_at", "moderation_note",
        "analyses_table", "seller", "similar_listings", "language",
    )
    fieldsets = (
        # The texts' language: the seller's reasons and suggestion are in it.
        (None, {"fields": ("title", "description", "language", "category", "price", "image", "image_preview",
                           "seller")}),
        ("Similar listings", {"fields": ("similar_listings",)}),
        ("CLIP check", {"fields": (
            "status", "title_score_badge", "description_score_badge", "clip_verdict", "match_quality", "reasons_list",
            "checked_at", "analyses_table",
        )}),
        # For operators: collapsed, so moderators read the check in words.
        ("Technical details", {"classes": ["collapse"], "fields": ("checked_model", "image_sha256")}),
        ("Moderation", {"fields": ("moderated_by", "moderated_at", "moderation_note")}),
    )

    def get_urls(self):
        return [
            path("search/", self.admin_site.admin_view(self.search_view), name="listings_listing_search"),
            path(
                "<path:object_id>/image/",
                self.admin_site.admin_view(self.image_view),
                name="listings_listing_image",
            ),
            *ReviewViews(self).get_urls(),
            *super().get_urls(),
        ]

    def image_view(self, request, object_id):
        """The stored image, read through storage: works for private S3 buckets too."""
        listing_id = listing_id_parse(object_id)
        listing = Listing.objects.filter(pk=listing_id).first() if listing_id is not None else None
        if listing is None or not self.has_view_or_change_permission(request, listing):
            raise Http404("No such listing.")
        try:
            data = services.listing_image_read(listing=listing)
        except ClipcheckError:
            raise Http404("The image cannot be read.")
        content_type = mimetypes.guess_type(listing.image.name)[0] or "application/octet-stream"
        response = HttpResponse(data, content_type=content_type)
        response["Cache-Control"] = "private, max-age=3600"
        return response

    def search_view(self, request):
        """Search the catalogue by text or photo (what POST /clip/search answers)."""
        if not self.has_view_or_change_permission(request):
            raise PermissionDenied
        form = SearchForm(request.POST or None, request.FILES or None)
        hits = None
        if request.method == "POST" and form.is_valid():
            try:
                hits = listings_search(
                    text=form.cleaned_data["text"].strip() or None, image=form.cleaned_data.get("image"),
                    k=form.cleaned_data["k"], statuses=form.cleaned_data["status"] or None,
                )
            except ClipcheckError as exc:
                form.add_error(None, exc.message)
        context = {
            **self.admin_site.each_context(request),
            "title": "Search listings by text or photo",
            "opts": self.model._meta,
            "form": form,
            "hits": [(hit, image_url(hit.listing), reverse("admin:listings_listing_change", args=[hit.listing.pk]))
                     for hit in hits or []],
            "searched": hits is not None,
        }
        request.current_app = self.admin_site.name
        return TemplateResponse(request, "admin/listings/search.html", context)

    def changelist_view(self, request, extra_context=None):
        search_url = reverse("admin:listings_listing_search")
        return super().changelist_view(request, {"photo_search_url": search_url, **(extra_context or {})})

    @admin.display(description="similar listings")
    def similar_listings(self, listing):
        """The listings whose photos look most like this one, side by side, and why it was flagged."""
        if not listing.pk:
            return "—"
        reused = [reason for reason in listing.reasons if reason.get("code") == PHOTO_REUSED]
        similar = [
            (other, similarity, image_url(other), reverse("admin:listings_listing_change", args=[other.pk]))
            for other, similarity in selectors.listing_similar(listing=listing, k=6)
        ]
        return render_to_string("admin/listings/similar_listings.html", {
            "listing": listing, "image_url": image_url(listing), "reused": reused, "similar": similar,
        })

    @admin.display(description="image")
    def thumbnail(self, listing):
        if not listing.image:
            return "—"
        return render_to_string("admin/listings/thumbnail.html", {"url": image_url(listing)})

    @admin.display(description="image")
    def image_preview(self, listing):
        if not listing.pk or not listing.image:
            return "—"
        return render_to_string("admin/listings/image_preview.html", {"url": image_url(listing)})

    @admin.display(description="title score", ordering="title_score")
    def title_score_badge(self, listing):
        return quality_badge(listing.title_score, listing.checked_threshold)

    @admin.display(description="description score", ordering="description_score")
    def description_score_badge(self, listing):
        return quality_badge(listing.description_score, listing.checked_threshold)

    @admin.display(description="reasons")
    def reasons_list(self, listing):
        return reasons_html(listing)

    @admin.display(description="reasons")
    def reasons_summary(self, listing):
        return reasons_html(listing, compact=True)

    @admin.display(description="analyses")
    def analyses_table(self, listing):
        analyses = analyses_for_subject(subject=listing)[:20] if listing.pk else []
        if not analyses:
            return "—"
        return render_to_string("admin/listings/analyses_table.html", {"analyses": analyses})

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        # Photos written by this request: a save abandoned for a full disk deletes them (the
        # transaction already undid the rows) and says so, instead of a 500 and stray files.
        request.photos_stored = []
        try:
            return super().changeform_view(request, object_id, form_url, extra_context)
        except StorageFull as exc:
            stored_photos_delete(request.photos_stored)
            self.message_user(request, f"Nothing was saved: {exc.message}", messages.ERROR)
            return HttpResponseRedirect(request.get_full_path())

    def save_model(self, request, obj, form, change):
        field_file_write(field_file=obj.image, stored=request.photos_stored)
        check = services.listing_save(listing=obj, image_sha256=form.image_sha256)
        if check is not None:
            self.message_user(
                request, f"Image or text changed: re-checked, status {check.to_status}.", messages.INFO
            )
        # The admin instance is shared by requests: the flag lives on the request.
        request.listing_rechecked = check is not None

    def save_formset(self, request, form, formset, change):
        if formset.model is ListingPhoto:
            for photo_form in formset.forms:
                if "image" in photo_form.changed_data:
                    field_file_write(field_file=photo_form.instance.image, stored=request.photos_stored)
        super().save_formset(request, form, formset, change)
        if formset.model is ListingPhoto and formset.changed_objects and not getattr(request, "listing_rechecked", False):
            check = services.listing_check(listing=form.instance)
            self.message_user(request, f"A photo changed: re-checked, status {check.to_status}.", messages.INFO)

    @admin.action(description="Re-run the CLIP check on the selected listings", permissions=["change"])
    def recheck_selected(self, request, queryset):
        outcomes = services.listings_recheck(listings=list(queryset), source=Analysis.Source.ADMIN)
        failed = [outcome for outcome in outcomes if outcome.error is not None]
        matched = sum(1 for outcome in outcomes if outcome.error is None and outcome.is_match)
        mismatched = len(outcomes) - len(failed) - matched
        changed = sum(1 for outcome in outcomes if outcome.from_status != outcome.to_status)
        self.message_user(
            request,
            f"Checked {len(outcomes) - len(failed)} listing(s): {matched} match, {mismatched} mismatch; "
            f"{changed} changed status.",
        )
        if failed:
            self.message_user(
                request,
                f"{len(failed)} listing(s) could not be checked: "
                + "; ".join(f"#{outcome.listing.pk}: {outcome.error.message}" for outcome in failed[:5]),
                messages.WARNING,
            )


@admin.register(ReviewQueueItem)
class ReviewQueueAdmin(ReadOnlyAdminMixin, ModerationActionsMixin, admin.ModelAdmin):
    """Only the listings that need a person, oldest first, large enough to judge."""

    list_display = ("review_card", "title_score_badge", "description_score_badge", "reasons_summary", "waiting_since")
    list_display_links = None
    list_filter = (QualityBandFilter, "category")
    search_fields = ("title", "description", "category")
    ordering = ("created_at", "id")
    list_per_page = 20
    actions = ["approve_selected", "reject_selected"]
    title_score_badge = ListingAdmin.title_score_badge
    description_score_badge = ListingAdmin.description_score_badge
    reasons_summary = ListingAdmin.reasons_summary

    class Media:
        css = {"all": [STYLESHEET]}

    def changelist_view(self, request, extra_context=None):
        return super().changelist_view(request, {"title": "Listings that need review, oldest first", **(extra_context or {})})

    @admin.display(description="listing")
    def review_card(self, item):
        return render_to_string("admin/listings/review_card.html", {
            "item": item,
            "image_url": image_url(item),
            "change_url": reverse("admin:listings_listing_change", args=[item.pk]),
        })

    @admin.display(description="waiting", ordering="created_at")
    def waiting_since(self, item):
        return timesince(item.created_at)

    # The queue is a view of Listing: Listing's permissions apply.
    def has_view_permission(self, request, obj=None):
        return request.user.has_perm("listings.view_listing") or request.user.has_perm("listings.change_listing")


@admin.register(ModerationDecision)
class ModerationDecisionAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    # Narrow enough for a 1366 px laptop with the navigation sidebar open.
    list_display = ("decided_at", "listing", "moderator", "change", "reason", "scores", "sampled", "note_excerpt")
    list_filter = ("to_status", "from_status", "reason_code", "sampled", ("decided_at", admin.DateFieldListFilter))
    search_fields = ("note", "listing__title")
    list_select_related = ("listing", "moderator")
    readonly_fields = [field.name for field in ModerationDecision._meta.fields]

    class Media:
        css = {"all": [STYLESHEET]}

    @admin.display(description="decision", ordering="to_status")
    def change(self, decision):
        """From → to; an undone decision is struck through and says so."""
        return render_to_string("admin/listings/decision_change.html", {"decision": decision})

    @admin.display(description="reason", ordering="reason_code")
    def reason(self, decision):
        return decision.reason_label or "—"

    @admin.display(description="title / description score")
    def scores(self, decision):
        return " / ".join("—" if score is None else f"{score:.3f}" for score in (decision.title_score, decision.description_score))

    @admin.display(description="note")
    def note_excerpt(self, decision):
        return decision.note if len(decision.note) <= 60 else decision.note[:59] + "…"

    def get_urls(self):
        return [*TransparencyReportViews(self).get_urls(), *super().get_urls()]

    def changelist_view(self, request, extra_context=None):
        report_url = reverse("admin:listings_moderationdecision_transparency")
        return super().changelist_view(request, {"transparency_report_url": report_url, **(extra_context or {})})

    def has_view_permission(self, request, obj=None):
        # Moderators read the decisions they and their colleagues made.
        return super().has_view_permission(request, obj) or request.user.has_perm("listings.moderate_listing")


@admin.register(ListingCheckFailure)
class ListingCheckFailureAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Checks that could not run (missing or broken images), as the audit recorded them."""

    list_display = ("created_at", "listing", "code", "message", "source", "model")
    list_filter = ("code", "source", ("created_at", admin.DateFieldListFilter))
    search_fields = ("message", "listing__title")
    list_select_related = ("listing",)
    readonly_fields = [field.name for field in ListingCheckFailure._meta.fields]

    def has_view_permission(self, request, obj=None):
        return super().has_view_permission(request, obj) or request.user.has_perm("listings.moderate_listing")


@admin.register(StatementSubmission)
class StatementSubmissionAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Statements of reasons sent to the DSA Transparency Database (``clip_statements --submit``, docs/compliance.md)."""

    list_display = ("submitted_at", "puid", "state", "decision", "uuid")
    list_filter = ("state", ("submitted_at", admin.DateFieldListFilter))
    search_fields = ("puid", "uuid")
    list_select_related = ("decision",)
    readonly_fields = [field.name for field in StatementSubmission._meta.fields]

