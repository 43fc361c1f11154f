"""Listings: submission, CLIP checks and moderation decisions.

Status after a check (``status_after_check``):

- a listing no moderator has decided on follows the verdicts: both the title
  and the description match → ``approved``; either mismatches →
  ``needs_review``;
- a moderator's decision (approve, reject, flag) stands while the image and
  texts stay as they were when it was made: a re-check (new model, audit)
  updates the scores, never the status;
- when the image or a text of a moderated listing changes, the person judged
  other content, so it goes (and stays) back in ``needs_review`` whatever
  the verdicts, until a moderator decides again: a listing a moderator
  rejected is never approved by the machine.
"""

import logging
from dataclasses import dataclass, field

from django.core.files.base import ContentFile
from django.db import transaction
from django.utils import timezone

from clipcheck import scoring, selectors as clip_selectors
from clipcheck.hashes import texts_hash
from clipcheck.services import analyses as clip_analyses
from clipcheck.services.embeddings import image_embeddings_compute
from clipcheck.services.classification import image_classify
from clipcheck.services.thresholds import default_threshold, model_id
from clipcheck.errors import ClipcheckError
from clipcheck.images import decode_image
from clipcheck.models import Analysis
from clipcheck.settings import clip_settings
from listings import review
from listings.errors import ImageTextMismatch, ListingImageUnavailable
from listings.models import FORMAT_SUFFIXES, Listing
from listings.settings import listings_settings
from listings.similarity import photo_reused_reasons

logger = logging.getLogger(__name__)

Status = Listing.Status


@dataclass
class ListingCheck:
    """The outcome of checking one listing; ``error`` set when it could not be checked,
    ``skipped`` when another check of the same content was stored first."""

    listing: Listing
    from_status: str
    to_status: str
    title_analysis: Analysis | None = None
    description_analysis: Analysis | None = None
    error: ClipcheckError | None = None
    skipped: bool = False
    # photo_reused reasons: the photo is another listing's (listings.similarity).
    photo_reasons: list = field(default_factory=list)

    @property
    def is_scored(self):
        return self.title_analysis is not None and self.description_analysis is not None

    @property
    def texts_match(self):
        return self.is_scored and not (self.title_analysis.is_mismatch or self.description_analysis.is_mismatch)

    @property
    def is_match(self):
        """Both texts match the photo, and the photo is no other listing's."""
        return self.texts_match and not self.photo_reasons


@dataclass
class ListingSubmission:
    listing: Listing
    title_analysis: Analysis
    description_analysis: Analysis
    suggestion: str | None


def status_after_check(*, status, moderated, content_changed, is_match):
    """The status a check moves a listing to (the rules in the module docstring)."""
    if moderated:
        return Status.NEEDS_REVIEW if content_changed else status
    return Status.APPROVED if is_match else Status.NEEDS_REVIEW


# Submission (POST /upload)

def listing_submit(*, image_data, image, title, description, category="", price=None, policy=None, seller=None):
    """Check a new listing's photo against its title and description, then store it.

    Under the "reject" policy a description that does not match raises
    ``ImageTextMismatch`` (422) and nothing but the analyses is stored. A
    photo that another listing already shows adds a ``photo_reused`` reason
    and sends the listing to review.

    The listing and its analyses are committed together, so a crash leaves
    no analysis without its listing. Storage cannot join the transaction:
    the image is written just before it, and a crash in between leaves a
    file that no listing names, which ``clip_sweep_orphans`` removes.
    """
    policy = policy or listings_settings.UPLOAD_POLICY
    threshold = default_threshold(category=category or "")
    title_analysis, description_analysis = analyses = clip_analyses.analyses_compute(
        requests=[
            clip_analyses.AnalysisRequest(image=image, text=title, threshold=threshold),
            clip_analyses.AnalysisRequest(image=image, text=description, threshold=threshold),
        ],
        source=Analysis.Source.UPLOAD,
    )
    suggestion = None
    if title_analysis.is_mismatch or description_analysis.is_mismatch:
        suggestion = listing_suggestion(image=image)
    if policy == "reject" and description_analysis.is_mismatch:
        clip_analyses.analyses_save(analyses=analyses)
        raise ImageTextMismatch(
            "The photo does not match the description.",
            similarity_score=description_analysis.similarity_score,
            suggestion=suggestion,
        )

    listing = Listing(
        title=title, description=description, category=category or "", price=price, image_sha256=image.sha256,
        seller=seller,
    )
    photo_reasons = photo_reused_reasons(
        listing=listing, image=image, vector=image_embeddings_compute(images=[image])[0],
    )
    # The storage name is generated; the suffix comes from the decoded format.
    listing.image.save(f"upload.{FORMAT_SUFFIXES.get(image.format, 'bin')}", ContentFile(image_data), save=False)
    try:
        with transaction.atomic():
            listing.save()
            clip_analyses.analyses_link(analyses=analyses, subject=listing)
            clip_analyses.analyses_save(analyses=analyses)
            _listing_apply_check(
                listing=listing,
                image_sha256=image.sha256,
                texts_sha256=listing.texts_sha256,
                title_analysis=title_analysis,
                description_analysis=description_analysis,
                photo_reasons=photo_reasons,
            )
    except BaseException:
        listing.image.storage.delete(listing.image.name)
        raise
    return ListingSubmission(listing, title_analysis, description_analysis, suggestion)


def listing_suggestion(*, image):
    """A hint for the seller: what the photo looks like to the model."""
    stored = clip_selectors.image_embeddings_get(hashes=[image.sha256], model=model_id())
    matches = image_classify(
        image=image, top_k=listings_settings.SUGGESTION_TOP_K, image_embedding=stored.get(image.sha256)
    )
    names = ", ".join(match["category"] for match in matches)
    return f"Your photo looks like: {names}. Check that the photo shows the product described."


# Checks

def listing_check(*, listing, source=Analysis.Source.ADMIN):
    """Check one listing's stored image against its title and description.

    Raises the ``ClipcheckError`` when the image cannot be read or decoded;
    ``listing`` is refreshed with the stored result.
    """
    outcome = listings_check(listings=[listing], source=source)[0]
    if outcome.error is not None:
        raise outcome.error
    listing.refresh_from_db()
    return outcome


def listings_check(*, listings, source=Analysis.Source.AUDIT, threshold=None):
    """Check listings in one batch: one outcome per listing, in order.

    Images are read through storage and decoded by ``decode_image``; all
    images of the batch go through one ``encode_images`` call and all texts
    through one ``encode_texts`` call (``listings_score``), outside any
    transaction; analyses and status changes are then committed together in
    one short transaction (``listings_check_save``). A listing whose image
    cannot be read gets an outcome with ``error`` and is left as it was.
    """
    images = []
    for listing in listings:
        try:
            images.append(listing_image_decode(listing=listing))
        except ClipcheckError as exc:
            images.append(exc)
    checks = listings_score(listings=listings, images=images, source=source, threshold=threshold)
    with transaction.atomic():
        return listings_check_save(checks=checks)


def listing_image_decode(*, listing):
    """The listing's stored image through ``decode_image``; raises the ``ClipcheckError`` saying why not."""
    try:
        return decode_image(listing_image_read(listing=listing))
    except ClipcheckError as exc:
        logger.warning("Listing %s cannot be checked: %s", listing.pk, exc.message)
        raise


def listings_score(*, listings, images, source, threshold=None, store_embeddings=True, category_thresholds=None):
    """Run the model for listings whose images are decoded; nothing is saved.

    ``images[i]`` is the ``DecodedImage`` of ``listings[i]`` or the
    ``ClipcheckError`` that kept it from being decoded (the check gets that
    ``error``). The checks carry unsaved analyses and the status the listing
    would move to; ``listings_check_save`` stores them.

    The threshold of a listing: ``category_thresholds[listing.category]``
    when given and present, else ``threshold``; with neither, the default
    threshold of the listing's category (``default_threshold``).
    """
    checks, requests = [], []
    for listing, image in zip(listings, images):
        check = ListingCheck(listing=listing, from_status=listing.status, to_status=listing.status)
        checks.append(check)
        if isinstance(image, ClipcheckError):
            check.error = image
            continue
        listing_threshold = _listing_threshold(listing, threshold, category_thresholds)
        requests.append(clip_analyses.AnalysisRequest(
            image=image, text=listing.title, threshold=listing_threshold, subject=listing
        ))
        requests.append(clip_analyses.AnalysisRequest(
            image=image, text=listing.description, threshold=listing_threshold, subject=listing
        ))
    if not requests:
        return checks
    analyses = iter(clip_analyses.analyses_compute(requests=requests, source=source, store_embeddings=store_embeddings))
    decoded = [image for image in images if not isinstance(image, ClipcheckError)]
    # Stored by analyses_compute (or computed again in a dry run, which stores nothing).
    vectors = iter(image_embeddings_compute(images=decoded, store=store_embeddings))
    decoded = iter(decoded)
    for check in checks:
        if check.error is None:
            check.title_analysis, check.description_analysis = next(analyses), next(analyses)
            check.photo_reasons = photo_reused_reasons(listing=check.listing, image=next(decoded), vector=next(vectors))
            check.to_status = _status_after(listing=check.listing, is_match=check.is_match)
    return checks


def _listing_threshold(listing, threshold, category_thresholds):
    if category_thresholds and listing.category in category_thresholds:
        return category_thresholds[listing.category]
    if threshold is None and category_thresholds is None:
        return default_threshold(category=listing.category)
    return threshold


def listings_check_save(*, checks, done=None):
    """Store checks computed by ``listings_score``; call it inside a transaction.

    The listings are locked and re-read: a moderator's decision made while
    the model ran is not overwritten with a stale status, and a listing
    edited or deleted meanwhile keeps the analyses but not a status from the
    old texts (the edit brings its own check).

    With ``done`` (a bulk audit), rows another transaction holds are skipped
    rather than waited for (``skip_locked``: that writer is storing them),
    and so is every listing for which ``done(fresh_listing)`` is true: the
    skipped ones get ``skipped=True`` and nothing is stored for them.
    """
    scored = [check for check in checks if check.is_scored]
    if not scored:
        return checks
    locked = Listing.objects.select_for_update(skip_locked=done is not None).filter(
        pk__in=[check.listing.pk for check in scored]
    ).order_by("pk")
    current = {listing.pk: listing for listing in locked}
    to_apply, to_store = [], []
    for check in scored:
        fresh = current.get(check.listing.pk)
        if _done_meanwhile(fresh=fresh, done=done):
            check.skipped, check.to_status = True, (fresh or check.listing).status
            check.title_analysis = check.description_analysis = None
            continue
        to_store += [check.title_analysis, check.description_analysis]
        if _changed_meanwhile(check=check, fresh=fresh):
            # Deleted or edited meanwhile; the edit brings its own check.
            check.listing, check.to_status = fresh or check.listing, (fresh or check.listing).status
            continue
        to_apply.append((check, fresh))
    clip_analyses.analyses_save(analyses=to_store)
    for check, fresh in to_apply:
        _check_apply_fresh(check=check, fresh=fresh)
    return checks


def _done_meanwhile(*, fresh, done):
    """In a bulk audit (``done`` given): True when another writer stored this listing, or it is gone."""
    return done is not None and (fresh is None or done(fresh))


def _changed_meanwhile(*, check, fresh):
    """True when the listing was deleted, or its image or texts changed, since ``check`` read it."""
    checked_texts = texts_hash(check.listing.title, check.listing.description)
    return fresh is None or fresh.image.name != check.listing.image.name or fresh.texts_sha256 != checked_texts


def _check_apply_fresh(*, check, fresh):
    check.listing = fresh
    check.from_status = fresh.status
    check.to_status = _listing_apply_check(
        listing=fresh,
        image_sha256=check.title_analysis.image_sha256,
        texts_sha256=fresh.texts_sha256,
        title_analysis=check.title_analysis,
        description_analysis=check.description_analysis,
        photo_reasons=check.photo_reasons,
    ).to_status


def listings_recheck(*, listings, source=Analysis.Source.ADMIN):
    """Check many listings in batches of ``LISTINGS["CHECK_BATCH_SIZE"]``."""
    listings = list(listings)
    size = listings_settings.CHECK_BATCH_SIZE
    outcomes = []
    for start in range(0, len(listings), size):
        outcomes.extend(listings_check(listings=listings[start:start + size], source=source))
    return outcomes


def listing_image_read(*, listing):
    """The stored image bytes, read through the listing's storage (local or S3)."""
    limit = clip_settings.MAX_UPLOAD_BYTES
    if not listing.image.name:
        raise ListingImageUnavailable(f"Listing {listing.pk} has no image.")
    try:
        with listing.image.storage.open(listing.image.name, "rb") as handle:
            return handle.read(limit + 1)
    except Exception as exc:  # each storage backend raises its own errors
        raise ListingImageUnavailable(
            f"The image of listing {listing.pk} cannot be read from storage: {exc.__class__.__name__}."
        ) from exc


def _status_after(*, listing, is_match):
    return status_after_check(
        status=listing.status,
        moderated=listing.is_moderated,
        content_changed=listing.content_changed_since_decision(),
        is_match=is_match,
    )


def _listing_apply_check(*, listing, image_sha256, texts_sha256, title_analysis, description_analysis, photo_reasons=()):
    from_status = listing.status
    is_match = not (title_analysis.is_mismatch or description_analysis.is_mismatch or photo_reasons)
    listing.reasons = list(photo_reasons)
    listing.image_sha256 = image_sha256
    listing.status = _status_after(listing=listing, is_match=is_match)
    if listing.status == Status.APPROVED and from_status != Status.APPROVED:
        # A random share of the machine's approvals goes to people too.
        review.listing_sample_for_review(listing=listing)
    listing.title_score = title_analysis.similarity_score
    listing.description_score = description_analysis.similarity_score
    listing.clip_verdict = Analysis.Verdict.MATCH if is_match else Analysis.Verdict.MISMATCH
    listing.match_quality = scoring.match_quality(min(listing.title_score, listing.description_score))
    listing.checked_at = timezone.now()
    listing.checked_model = title_analysis.model
    listing.checked_image_sha256 = image_sha256
    listing.checked_texts_sha256 = texts_sha256
    listing.save(update_fields=[
        "status", "title_score", "description_score", "clip_verdict", "match_quality", "checked_at",
        "checked_model", "image_sha256", "checked_image_sha256", "checked_texts_sha256", "reasons", "review_sampled",
        "updated_at",
    ])
    return ListingCheck(
        listing=listing, from_status=from_status, to_status=listing.status,
        title_analysis=title_analysis, description_analysis=description_analysis, photo_reasons=list(photo_reasons),
    )


# Saves (the admin's change form)

def listing_save(*, listing, image_sha256=None, source=Analysis.Source.ADMIN):
    """Save a created or edited listing and re-check it when its image or texts changed.

    ``image_sha256`` is given when a new image was attached. Returns the
    ``ListingCheck``, or None when nothing the check depends on changed.
    """
    if image_sha256 is not None:
        listing.image_sha256 = image_sha256
    listing.save()
    if not listing.content_changed_since_check():
        return None
    return listing_check(listing=listing, source=source)


# Moderation

def listings_decide(*, listings, moderator, to_status, note="", reason_code=""):
    """Record a moderator's decision on listings; returns how many changed.

    Listings already in ``to_status`` are left alone (no decision recorded).
    """
    changed = 0
    now = timezone.now()
    with transaction.atomic():
        for listing in Listing.objects.select_for_update().filter(pk__in=[listing.pk for listing in listings]):
            # A sampled approval waiting for review is decided even when approved again.
            if listing.status == to_status and not (listing.review_sampled and not listing.is_moderated):
                continue
            review.decision_record(
                listing=listing, moderator=moderator, to_status=to_status, note=note, reason_code=reason_code, now=now
            )
            changed += 1
    return changed


def listings_flag_mismatches(*, listings, moderator, note=""):
    """Send the listings whose latest check found a mismatch to the review queue."""
    mismatched = [listing for listing in listings if listing.clip_verdict == Analysis.Verdict.MISMATCH]
    return listings_decide(listings=mismatched, moderator=moderator, to_status=Status.NEEDS_REVIEW, note=note)
