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
from collections.abc import Collection, Iterable
from datetime import datetime
from typing import Any, TypeGuard, cast

from django.contrib import messages
from django.contrib.admin import ModelAdmin
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils import timezone

from clipcheck import scoring
from clipcheck.attributes import value_pattern
from clipcheck.errors import ClipcheckError
from clipcheck.languages import value_forms_named
from clipcheck.reasons import reason_display, reason_label
from clipcheck.services.thresholds import default_threshold
from clipcheck.settings import clip_settings
from clipcheck.verdicts import CONFLICT_CODES  # reasons that name words of the text: highlighted
from listings import review, selectors
from listings.models import Appeal, Listing, ListingPhoto, ModerationDecision

# The largest primary key a database stores (BigAutoField): a larger id names no listing.
MAX_LISTING_ID = 2**63 - 1
SKIPPED_SESSION_KEY = "listings_review_skipped"
# When this session's reviewing began: its decisions are counted from the
# database since then (a decision never writes the session).
STARTED_SESSION_KEY = "listings_review_started"

# ``(text, highlighted)``
Segment = tuple[str, bool]


def text_segments(text: str, reasons: Iterable[object] | None, field_name: str) -> list[Segment]:
    """``text`` as ``[(text, highlighted)]``: the passages a reason about ``field_name`` points at
    and the words a conflict says the text names are highlighted."""
    spans = [span for reason in reasons or [] for span in _reason_spans(reason, text, field_name)]
    segments: list[Segment] = []
    position = 0
    for start, end in sorted(spans):
        start = max(start, position)
        if start >= end:
            continue
        if start > position:
            segments.append((text[position:start], False))
        segments.append((text[start:end], True))
        position = end
    if position < len(text):
        segments.append((text[position:], False))
    return segments


def _reason_spans(reason: object, text: str, field_name: str) -> list[tuple[int, int]]:
    """The character spans of ``text`` that one reason points at."""
    if not isinstance(reason, dict) or reason.get("field") != field_name:
        return []
    spans: list[tuple[int, int]] = []
    # The span is the reason's own start/end, or its "passage" object's (docs/verdicts.md).
    span = cast(dict[str, Any], reason.get("passage")) if isinstance(reason.get("passage"), dict) else reason
    start, end = span.get("start"), span.get("end")
    if _is_offset(start) and _is_offset(end) and start < end:
        spans.append((start, min(end, len(text))))
    if reason.get("code") in CONFLICT_CODES and isinstance(reason.get("text_says"), str):
        # Any form of the value: the text may say "roter" where the reason names "rot".
        forms = value_forms_named(str(reason.get("attribute", "")), reason["text_says"])
        spans += [match.span() for match in value_pattern(forms).finditer(text)]
    return spans


def description_segments(description: str, reasons: Iterable[object] | None) -> list[Segment]:
    return text_segments(description, reasons, "description")


def listing_id_parse(value: object) -> int | None:
    """A listing id from a URL or form: ASCII digits within the database's range, else None."""
    text = str(value)
    if not (text.isascii() and text.isdigit()) or len(text) > 19:
        return None
    number = int(text)
    return number if 0 < number <= MAX_LISTING_ID else None


def _is_offset(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def reason_rows(reasons: Iterable[object] | None, threshold: float | None) -> list[dict[str, Any]]:
    """The verdict's reasons for people (``clipcheck.reasons``): label, field, sentence, evidence in words."""
    return [reason_display(reason, threshold=threshold) for reason in reasons or [] if isinstance(reason, dict)]


def score_rows(listing: Listing, threshold: float) -> list[dict[str, Any]]:
    """The texts' scores, each with its verdict and whether the machine was unsure (near the threshold)."""
    rows: list[dict[str, Any]] = []
    for field_name, score in (("Title", listing.title_score), ("Description", listing.description_score)):
        row: dict[str, Any] = {"field": field_name, "score": score, "below": False, "unsure": False}
        if score is not None:
            row.update(below=scoring.is_mismatch(score, threshold), unsure=scoring.confidence(score, threshold) == "low")
        rows.append(row)
    return rows


def listing_photos(listing: Listing) -> list[ListingPhoto]:
    """The listing's photos (``photos`` relation, when the project has one) that hold an image, in order."""
    photos = getattr(listing, "photos", None)
    if photos is None or not hasattr(photos, "all"):
        return []
    return [photo for photo in photos.all() if getattr(photo, "image", None)]


def photo_urls(listing: Listing) -> list[str]:
    """Every photo of the listing, each read through storage by an admin view."""
    photos = listing_photos(listing)
    if not photos:
        return [reverse("admin:listings_listing_image", args=[listing.pk])] if listing.image else []
    return [
        reverse("admin:listings_listing_review_photo", args=[listing.pk, index]) for index in range(len(photos))
    ]


def reused_photo_pairs(listing: Listing, reasons: Iterable[object] | None) -> list[dict[str, Any]]:
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
            "photo_url": next(iter(photo_urls(other)), None),
            "change_url": reverse("admin:listings_listing_change", args=[other.pk]),
            "similarity": named[other.pk].get("similarity"),
            "seller_differs": named[other.pk].get("seller_differs"),
            "titles_conflict": named[other.pk].get("titles_conflict"),
        }
        for other in others.values()
    ]


def similar_listings(listing: Listing, *, exclude: Collection[int], k: int = 3) -> list[dict[str, Any]]:
    """The catalogue's listings whose photos look most like this one (not those shown as reused)."""
    try:
        similar = selectors.listing_similar(listing=listing, k=k + len(exclude))
    except ClipcheckError:
        return []  # no embedding stored for this model yet: the panel stays empty
    return [
        {
            "listing": other, "similarity": similarity, "photo_url": next(iter(photo_urls(other)), None),
            "change_url": reverse("admin:listings_listing_change", args=[other.pk]),
        }
        for other, similarity in similar if other.pk not in exclude
    ][:k]


def reason_code_choices() -> list[dict[str, str]]:
    """The moderators' reject reasons (``REVIEW_REASON_CODES``), each with its label in words."""
    return [{"code": code, "label": reason_label(code)} for code in review.review_reason_codes()]


def appeal_context(listing: Listing) -> dict[str, Any] | None:
    """The listing's open appeal for the review screen: the seller's text and the contested decision with the
    reasons it relied on; None when the listing is not appealed."""
    appeal = (
        Appeal.objects.filter(listing=listing, outcome=Appeal.Outcome.OPEN).select_related("decision").first()
    )
    if appeal is None:
        return None
    contested = appeal.decision
    return {
        "appeal": appeal,
        "contested": contested,
        "reasons": reason_rows(contested.reasons, contested.threshold),
    }


class ReviewViews:
    def __init__(self, model_admin: ModelAdmin) -> None:
        self.model_admin = model_admin
        self.admin_site = model_admin.admin_site

    def get_urls(self) -> list[URLPattern]:
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

    def check_permission(self, request: HttpRequest) -> None:
        if not request.user.has_perm("listings.moderate_listing"):
            raise PermissionDenied

    def skipped(self, request: HttpRequest) -> list[int]:
        return request.session.get(SKIPPED_SESSION_KEY, [])

    def decided(self, request: HttpRequest) -> int:
        """This moderator's decisions in force since the review screen was opened in this session."""
        started = request.session.get(STARTED_SESSION_KEY)
        if not started:
            return 0
        return review.review_decided_since(moderator=request.user, since=datetime.fromisoformat(started))

    # Views

    def review_view(self, request: HttpRequest) -> HttpResponse:
        """The screen, with the listing you hold; claiming one is a POST (``review/next/``), which the
        screen makes as it opens, so that no link can claim on a moderator's behalf."""
        self.check_permission(request)
        if request.GET.get("restart"):
            request.session[SKIPPED_SESSION_KEY] = []
        if STARTED_SESSION_KEY not in request.session:
            request.session[STARTED_SESSION_KEY] = timezone.now().isoformat()
        listing = review.review_held(moderator=request.user, exclude=self.skipped(request))
        context = {
            **self.admin_site.each_context(request),
            "title": "Review listings",
            "subtitle": None,
            "opts": Listing._meta,
            "reason_codes": reason_code_choices(),
            "item": {**self.item_context(request, listing), "opening": listing is None},
            "claim_on_open": listing is None,
        }
        request.current_app = self.admin_site.name
        return TemplateResponse(request, "admin/listings/review/page.html", context)

    def next_view(self, request: HttpRequest) -> HttpResponse:
        """POST: claim the listing you hold or the next one; with ``skip=<id>`` give that one back
        first; with ``back=1`` (``current=<id>``) give the current one back and return to the
        listings skipped this session. GET only shows the listing you hold (it claims nothing)."""
        self.check_permission(request)
        if request.method == "GET":
            held = review.review_held(moderator=request.user, exclude=self.skipped(request))
            return self.item_response(request, listing=held, claim=False)
        if request.method != "POST":
            return self.error_response(ClipcheckError("Use POST.", code="method_not_allowed", status_code=405))
        if request.POST.get("back"):
            # The listing on the screen is given back too: the oldest skipped one comes first.
            current = listing_id_parse(request.POST.get("current", ""))
            if current is not None:
                review.review_release(listing_id=current, moderator=request.user)
            request.session[SKIPPED_SESSION_KEY] = []
        elif "skip" in request.POST:
            skip = listing_id_parse(request.POST["skip"])
            if skip is None:
                return self.error_response(ClipcheckError("skip must be a listing id.", code="invalid_review"))
            review.review_release(listing_id=skip, moderator=request.user)
            request.session[SKIPPED_SESSION_KEY] = [*self.skipped(request), skip][-500:]
        return self.item_response(request)

    def decide_view(self, request: HttpRequest, listing_id: int) -> HttpResponse:
        self.check_permission(request)
        from_change_page = request.POST.get("next") == "change"
        if request.method != "POST":
            return self.error_response(ClipcheckError("Use POST.", code="method_not_allowed", status_code=405))
        if listing_id_parse(listing_id) is None:
            raise Http404("No such listing.")
        try:
            review.review_decide(
                listing_id=listing_id,
                moderator=request.user,
                decision=request.POST.get("decision", ""),
                reason_code=request.POST.get("reason_code", ""),
                note=request.POST.get("note", "")[:2000],
                require_claim=not from_change_page,
                expected_status=request.POST.get("status") or None,
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

    def undo_view(self, request: HttpRequest) -> HttpResponse:
        self.check_permission(request)
        if request.method != "POST":
            return self.error_response(ClipcheckError("Use POST.", code="method_not_allowed", status_code=405))
        try:
            listing = review.review_undo(moderator=request.user)
        except ClipcheckError as exc:
            return self.error_response(exc)
        request.session[SKIPPED_SESSION_KEY] = [pk for pk in self.skipped(request) if pk != listing.pk]
        return self.item_response(request, listing=listing, undone=True)

    def photo_view(self, request: HttpRequest, listing_id: int, index: int) -> HttpResponse:
        """A listing's ``index``-th photo, read through storage (private buckets too)."""
        self.check_permission(request)
        if listing_id_parse(listing_id) is None:
            raise Http404("No such listing.")
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

    def item_response(
        self, request: HttpRequest, listing: Listing | None = None, undone: bool = False, claim: bool = True
    ) -> HttpResponse:
        if listing is None and claim:
            listing = review.review_claim_next(moderator=request.user, exclude=self.skipped(request))
        context = {"item": self.item_context(request, listing, undone=undone), "reason_codes": reason_code_choices()}
        return TemplateResponse(request, "admin/listings/review/item.html", context)

    def item_context(self, request: HttpRequest, listing: Listing | None, undone: bool = False) -> dict[str, Any]:
        stats = review.review_queue_stats()
        context: dict[str, Any] = {
            "queue": stats, "listing": listing, "undone": undone, "skipped": len(self.skipped(request)),
            "decided": self.decided(request),
        }
        if listing is None:
            return context
        threshold = default_threshold(category=listing.category)
        reused = reused_photo_pairs(listing, listing.reasons)
        scores = score_rows(listing, threshold)
        context.update({
            "threshold": threshold,
            "photos": photo_urls(listing),
            "title_segments": text_segments(listing.title, listing.reasons, "title"),
            "description_segments": description_segments(listing.description, listing.reasons),
            "reasons": reason_rows(listing.reasons, threshold),
            "scores": scores,
            "unsure": any(row["unsure"] for row in scores),
            "reused": reused,
            "similar": similar_listings(listing, exclude={pair["listing"].pk for pair in reused} | {listing.pk}),
            "decisions": listing.decisions.select_related("moderator")[:5],
            "similar_decisions": (
                ModerationDecision.objects.filter(listing__image_sha256=listing.image_sha256, undone_at__isnull=True)
                .exclude(listing=listing)
                .select_related("listing", "moderator")[:5]
            ),
            "appeal": appeal_context(listing),
            "change_url": reverse("admin:listings_listing_change", args=[listing.pk]),
            "decide_url": reverse("admin:listings_listing_review_decide", args=[listing.pk]),
        })
        return context

    def error_response(self, exc: ClipcheckError) -> JsonResponse:
        from clipcheck.api.exceptions import error_body

        return JsonResponse(error_body(exc.code, exc.message), status=exc.status_code)

    def change_page_redirect(self, listing_id: int) -> HttpResponseRedirect:
        return HttpResponseRedirect(reverse("admin:listings_listing_change", args=[listing_id]))
