"""The review workbench in the admin: one listing at a time, decided from the keyboard.

``ReviewViews(model_admin).get_urls()`` adds, under the listing admin:

- ``review/``: the review screen (``admin/listings/review/page.html``);
- ``review/next/``: the next claimed listing as an HTML fragment (a POST
  with ``skip=<id>`` gives that listing back first);
- ``review/<id>/decide/``: POST ``decision`` (approve/reject), ``reason_code``,
  ``note``; answers the next listing's fragment, or redirects back to the
  change page when posted from there (``next=change``);
- ``review/undo/``: POST, undoes the moderator's latest decision and answers
  that listing's fragment.

Every view runs under ``admin_site.admin_view`` and needs
``listings.moderate_listing``; the logic is in ``listings.review``. Errors of
the fragment endpoints use the one JSON error shape.
"""

import mimetypes

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponse, HttpResponseRedirect, JsonResponse
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse

from clipcheck.services.thresholds import default_threshold
from clipcheck.errors import ClipcheckError
from clipcheck.settings import clip_settings
from listings import review
from listings.models import Listing, ModerationDecision

SKIPPED_SESSION_KEY = "listings_review_skipped"
# Keys of a reason that are not evidence to list.
REASON_FIELDS = {"code", "field", "message", "start", "end"}


def description_segments(description, reasons):
    """The description as ``[(text, highlighted)]``: passages a reason points at are highlighted."""
    spans = []
    for reason in reasons or []:
        if not isinstance(reason, dict) or reason.get("field") != "description":
            continue
        # The span is the reason's own start/end, or its "passage" object's (docs/verdicts.md).
        span = reason.get("passage") if isinstance(reason.get("passage"), dict) else reason
        start, end = span.get("start"), span.get("end")
        if _is_offset(start) and _is_offset(end) and start < end:
            spans.append((start, min(end, len(description))))
    segments, position = [], 0
    for start, end in sorted(spans):
        start = max(start, position)
        if start >= end:
            continue
        if start > position:
            segments.append((description[position:start], False))
        segments.append((description[start:end], True))
        position = end
    if position < len(description):
        segments.append((description[position:], False))
    return segments


def _is_offset(value):
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def reason_rows(reasons, threshold):
    """The verdict's reasons for the template: code, field, message, evidence pairs."""
    rows = []
    for reason in reasons or []:
        if not isinstance(reason, dict):
            continue
        evidence = []
        # A reason that states its threshold is judged against it, else against the one in force.
        against = reason.get("threshold", threshold)
        against = against if isinstance(against, (int, float)) and not isinstance(against, bool) else threshold
        for key, value in reason.items():
            if key in REASON_FIELDS:
                continue
            below = isinstance(value, (int, float)) and not isinstance(value, bool) and "score" in key and value < against
            evidence.append({"key": key, "value": value, "below": below})
        rows.append({
            "code": reason.get("code", ""), "field": reason.get("field", ""), "message": reason.get("message", ""),
            "evidence": evidence,
        })
    return rows


def listing_photos(listing):
    """The listing's photos (``photos`` relation, when the project has one) that hold an image, in order."""
    photos = getattr(listing, "photos", None)
    if photos is None or not hasattr(photos, "all"):
        return []
    return [photo for photo in photos.all() if getattr(photo, "image", None)]


def photo_urls(listing):
    """Every photo of the listing, each read through storage by an admin view."""
    photos = listing_photos(listing)
    if not photos:
        return [reverse("admin:listings_listing_image", args=[listing.pk])] if listing.image else []
    return [
        reverse("admin:listings_listing_review_photo", args=[listing.pk, index]) for index in range(len(photos))
    ]


def reused_photo_pairs(listing, reasons):
    """The listings a ``photo_reused`` reason names, each with its first photo,
    to show beside this listing's (missing listings are left out)."""
    named = {
        reason["listing_id"]: reason for reason in reasons or []
        if isinstance(reason, dict) and reason.get("code") == "photo_reused" and isinstance(reason.get("listing_id"), int)
    }
    others = Listing.objects.in_bulk(list(named))
    return [
        {
            "listing": other,
            "photo_url": (photo_urls(other) or [None])[0],
            "change_url": reverse("admin:listings_listing_change", args=[other.pk]),
            "similarity": named[other.pk].get("similarity"),
            "seller_differs": named[other.pk].get("seller_differs"),
            "titles_conflict": named[other.pk].get("titles_conflict"),
        }
        for other in others.values()
    ]


class ReviewViews:
    def __init__(self, model_admin):
        self.model_admin = model_admin
        self.admin_site = model_admin.admin_site

    def get_urls(self):
        wrap = self.admin_site.admin_view
        return [
            path("review/", wrap(self.review_view), name="listings_listing_review"),
            path("review/next/", wrap(self.next_view), name="listings_listing_review_next"),
            path("review/undo/", wrap(self.undo_view), name="listings_listing_review_undo"),
            path("review/<int:listing_id>/decide/", wrap(self.decide_view), name="listings_listing_review_decide"),
            path(
                "review/<int:listing_id>/photo/<int:index>/", wrap(self.photo_view), name="listings_listing_review_photo"
            ),
        ]

    def check_permission(self, request):
        if not request.user.has_perm("listings.moderate_listing"):
            raise PermissionDenied

    def skipped(self, request):
        return request.session.get(SKIPPED_SESSION_KEY, [])

    # Views

    def review_view(self, request):
        self.check_permission(request)
        if request.GET.get("restart"):
            request.session[SKIPPED_SESSION_KEY] = []
        listing = review.review_claim_next(moderator=request.user, exclude=self.skipped(request))
        context = {
            **self.admin_site.each_context(request),
            "title": "Review listings",
            "subtitle": None,
            "opts": Listing._meta,
            "reason_codes": review.review_reason_codes(),
            "item": self.item_context(request, listing),
        }
        request.current_app = self.admin_site.name
        return TemplateResponse(request, "admin/listings/review/page.html", context)

    def next_view(self, request):
        """GET: the listing you hold or the next one; POST ``skip=<id>``: give that one back first."""
        self.check_permission(request)
        if request.method == "POST":
            skip = request.POST.get("skip", "")
            if not skip.isdigit():
                return self.error_response(ClipcheckError("skip must be a listing id.", code="invalid_review"))
            review.review_release(listing_id=int(skip), moderator=request.user)
            request.session[SKIPPED_SESSION_KEY] = [*self.skipped(request), int(skip)][-500:]
        elif request.method != "GET":
            return self.error_response(ClipcheckError("Use GET or POST.", code="method_not_allowed", status_code=405))
        return self.item_response(request)

    def decide_view(self, request, listing_id):
        self.check_permission(request)
        from_change_page = request.POST.get("next") == "change"
        if request.method != "POST":
            return self.error_response(ClipcheckError("Use POST.", code="method_not_allowed", status_code=405))
        try:
            review.review_decide(
                listing_id=listing_id,
                moderator=request.user,
                decision=request.POST.get("decision", ""),
                reason_code=request.POST.get("reason_code", ""),
                note=request.POST.get("note", "")[:2000],
                require_claim=not from_change_page,
            )
        except ClipcheckError as exc:
            if from_change_page:
                self.model_admin.message_user(request, exc.message, messages.ERROR)
                return self.change_page_redirect(listing_id)
            return self.error_response(exc)
        if from_change_page:
            listing = get_object_or_404(Listing, pk=listing_id)
            self.model_admin.message_user(request, f"Decision recorded: {listing.get_status_display().lower()}.")
            return self.change_page_redirect(listing_id)
        return self.item_response(request)

    def undo_view(self, request):
        self.check_permission(request)
        if request.method != "POST":
            return self.error_response(ClipcheckError("Use POST.", code="method_not_allowed", status_code=405))
        try:
            listing = review.review_undo(moderator=request.user)
        except ClipcheckError as exc:
            return self.error_response(exc)
        request.session[SKIPPED_SESSION_KEY] = [pk for pk in self.skipped(request) if pk != listing.pk]
        return self.item_response(request, listing=listing, undone=True)

    def photo_view(self, request, listing_id, index):
        """A listing's ``index``-th photo, read through storage (private buckets too)."""
        self.check_permission(request)
        listing = get_object_or_404(Listing, pk=listing_id)
        photos = listing_photos(listing)
        if index >= len(photos):
            raise Http404("No such photo.")
        name = photos[index].image.name
        try:
            with photos[index].image.storage.open(name, "rb") as handle:
                data = handle.read(clip_settings.MAX_UPLOAD_BYTES + 1)
        except Exception:  # each storage backend raises its own errors
            raise Http404("The photo cannot be read.")
        response = HttpResponse(data, content_type=mimetypes.guess_type(name)[0] or "application/octet-stream")
        response["Cache-Control"] = "private, max-age=3600"
        return response

    # Rendering

    def item_response(self, request, listing=None, undone=False):
        if listing is None:
            listing = review.review_claim_next(moderator=request.user, exclude=self.skipped(request))
        context = {"item": self.item_context(request, listing, undone=undone), "reason_codes": review.review_reason_codes()}
        return TemplateResponse(request, "admin/listings/review/item.html", context)

    def item_context(self, request, listing, undone=False):
        stats = review.review_queue_stats()
        context = {"queue": stats, "listing": listing, "undone": undone}
        if listing is None:
            context["skipped"] = len(self.skipped(request))
            return context
        threshold = default_threshold(category=listing.category)
        context.update({
            "threshold": threshold,
            "photos": photo_urls(listing),
            "description_segments": description_segments(listing.description, listing.reasons),
            "reasons": reason_rows(listing.reasons, threshold),
            "scores": [
                {"field": "title", "score": listing.title_score},
                {"field": "description", "score": listing.description_score},
            ],
            "reused": reused_photo_pairs(listing, listing.reasons),
            "decisions": listing.decisions.select_related("moderator")[:20],
            "similar_decisions": (
                ModerationDecision.objects.filter(listing__image_sha256=listing.image_sha256, undone_at__isnull=True)
                .exclude(listing=listing)
                .select_related("listing", "moderator")[:5]
            ),
            "change_url": reverse("admin:listings_listing_change", args=[listing.pk]),
            "decide_url": reverse("admin:listings_listing_review_decide", args=[listing.pk]),
        })
        return context

    def error_response(self, exc):
        from clipcheck.api.exceptions import error_body

        return JsonResponse(error_body(exc.code, exc.message), status=exc.status_code)

    def change_page_redirect(self, listing_id):
        return HttpResponseRedirect(reverse("admin:listings_listing_change", args=[listing_id]))
