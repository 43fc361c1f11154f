"""Listings: submission, CLIP checks and moderation decisions.

Status after a check (``status_after_check``):

- a listing no moderator has decided on follows the verdict: no reasons
  (each text matches one of the photos, the category fits, the photos show
  the same item; see ``listings.verdicts``) → ``approved``; any reason →
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

from django.db import transaction
from django.db.models.functions import Now
from django.utils import timezone, translation
from django.utils.translation import gettext as _

from clipcheck import scoring
from clipcheck import verdicts as clip_verdicts
from clipcheck.default_attributes import DEFAULT_LANGUAGE
from clipcheck.errors import ClipcheckError
from clipcheck.hashes import texts_hash
from clipcheck.images import DecodedImage, decode_image
from clipcheck.models import Analysis
from clipcheck.nearduplicates import layout_signature
from clipcheck.services import analyses as clip_analyses
from clipcheck.services.embeddings import image_embeddings_compute, image_prepare
from clipcheck.services.thresholds import default_threshold
from clipcheck.settings import clip_settings
from listings import review, verdicts
from listings.errors import ImageTextMismatch, ListingImageUnavailable, ReviewConflict
from listings.models import Listing, ListingPhoto
from listings.settings import listings_settings
from listings.similarity import photo_reused_reasons
from listings.uploads import stored_photos_delete, upload_photos_write

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
    # The listing-level reasons (category, photos) of this check.
    listing_reasons: list = field(default_factory=list)
    # photo_reused reasons: the photo is another listing's (listings.similarity).
    photo_reasons: list = field(default_factory=list)
    # ``(decoded photo, embedding)`` of each photo, as the check scored them.
    photos: list = field(default_factory=list)
    # ``{sha256: layout}`` of those photos (clipcheck.nearduplicates), computed once per check.
    layouts: dict = field(default_factory=dict)
    threshold: float | None = None

    @property
    def analyses(self):
        return [a for a in (self.title_analysis, self.description_analysis) if a is not None]

    @property
    def is_scored(self):
        return self.error is None and bool(self.analyses)

    @property
    def reasons(self):
        return verdicts.listing_reasons(
            title_analysis=self.title_analysis, description_analysis=self.description_analysis,
            extra=[*self.listing_reasons, *self.photo_reasons],
        )

    @property
    def is_match(self):
        """No reason at all: every text matches a photo, the category fits, the photos agree
        and none is another listing's."""
        return self.is_scored and not self.reasons

    @property
    def weakest_score(self):
        return min(a.similarity_score for a in self.analyses)


@dataclass(frozen=True)
class ListingTexts:
    """What a check judges: a listing's texts and category against its photos,
    the primary first; ``listing`` is None for an upload not stored yet."""

    listing: Listing | None
    title: str
    description: str
    category: str
    photos: tuple[DecodedImage, ...]
    language: str = DEFAULT_LANGUAGE

    @classmethod
    def of_listing(cls, listing, *, photos):
        return cls(listing=listing, title=listing.title, description=listing.description,
                   category=listing.category, photos=tuple(photos), language=listing.language)


@dataclass(frozen=True)
class PhotoRead:
    """One stored photo read for a check: ``image`` decoded, or the ``error``
    that kept it from being read or decoded."""

    image: DecodedImage | None = None
    error: ClipcheckError | None = None


@dataclass(frozen=True)
class ListingSubmission:
    listing: Listing
    title_analysis: Analysis | None
    description_analysis: Analysis | None
    reasons: list
    suggestion: str | None


def status_after_check(*, status, moderated, content_changed, is_match):
    """The status a check moves a listing to (the rules in the module docstring)."""
    if moderated:
        return Status.NEEDS_REVIEW if content_changed else status
    return Status.APPROVED if is_match else Status.NEEDS_REVIEW


# Submission (POST /upload)

def listing_submit(*, photos, title="", description="", category="", price=None, policy=None, seller=None,
                   language=DEFAULT_LANGUAGE):
    """Check a new listing's photos against its title and description, then store it.

    ``photos`` are ``(bytes as sent, DecodedImage)`` pairs, the primary
    first. Each text is judged against the best photo; the category and the
    photos are checked too (``listings.verdicts``). Under the "reject"
    policy a description (or, without one, a title) that does not match
    raises ``ImageTextMismatch`` (422) and nothing but the analyses is stored.
    A primary photo that another listing already shows adds a
    ``photo_reused`` reason and sends the listing to review.

    The listing, its photos and its analyses are committed together, so a
    crash leaves no analysis without its listing. The texts are judged in
    ``language`` and the reasons and suggestion worded in it. Storage cannot join the
    transaction: the photos are written just before it, and a crash in
    between leaves files that nothing names, which ``clip_sweep_orphans``
    removes.
    """
    policy = policy or listings_settings.UPLOAD_POLICY
    texts = ListingTexts(listing=None, title=title, description=description, category=category,
                         photos=tuple(image for _, image in photos), language=language)
    check, = _listings_texts_check(entries=[texts], source=Analysis.Source.UPLOAD)
    if policy == "reject":
        _upload_refuse_mismatch(check=check, language=language)

    _, primary = photos[0]
    listing = Listing(
        title=title, description=description, category=category or "", price=price, image_sha256=primary.sha256,
        seller=seller, language=language,
    )
    # The check already holds every photo's embedding: no second lookup.
    with translation.override(language):
        check.photo_reasons = photo_reused_reasons(listing=listing, photos=check.photos, layouts=check.layouts)
    reasons = check.reasons
    suggestion = clip_verdicts.suggestion(reasons, language=language)
    stored = []  # (storage, name) of every photo written or being written
    try:
        extra_photos = upload_photos_write(listing=listing, photos=photos, stored=stored)
        with transaction.atomic():
            listing.save()
            ListingPhoto.objects.create(
                listing=listing, image=listing.image.name, image_sha256=primary.sha256, position=0
            )
            for photo in extra_photos:
                photo.listing = listing
            ListingPhoto.objects.bulk_create(extra_photos)
            clip_analyses.analyses_link(analyses=check.analyses, subject=listing)
            clip_analyses.analyses_save(analyses=check.analyses)
            check.listing = listing
            _listing_apply_check(listing=listing, check=check, image_sha256=primary.sha256, texts_sha256=listing.texts_sha256)
    except BaseException:
        stored_photos_delete(stored)
        raise
    return ListingSubmission(
        listing=listing, title_analysis=check.title_analysis, description_analysis=check.description_analysis,
        reasons=reasons, suggestion=suggestion,
    )


def _listing_threshold(category, threshold, category_thresholds):
    """``category_thresholds[category]`` when present, else ``threshold``; with
    neither, the default threshold of the category (``default_threshold``)."""
    if category_thresholds and category in category_thresholds:
        return category_thresholds[category]
    if threshold is None and category_thresholds is None:
        return default_threshold(category=category or "")
    return threshold


def _upload_refuse_mismatch(*, check, language=DEFAULT_LANGUAGE):
    """The "reject" policy: a description (or, without one, a title) that does not
    match raises ``ImageTextMismatch``; only the analyses are stored."""
    deciding = check.description_analysis or check.title_analysis
    if not deciding.is_mismatch:
        return
    clip_analyses.analyses_save(analyses=check.analyses)
    with translation.override(language):
        message = (_("The photo does not match the description.") if check.description_analysis is not None
                   else _("The photo does not match the title."))
    raise ImageTextMismatch(
        message,
        similarity_score=deciding.similarity_score,
        suggestion=clip_verdicts.suggestion(check.reasons, language=language),
        reasons=check.reasons,
    )


def _listings_texts_check(*, entries, source, threshold=None, store_embeddings=True, category_thresholds=None):
    """Unsaved ``ListingCheck``s, one per ``ListingTexts`` of ``entries``.

    All photos go through one ``encode_images`` call (for those not stored
    yet) and all texts, passages and rewrites through one ``encode_texts``
    call; each text is judged against the best photo of its listing.
    """
    all_photos = [photo for entry in entries for photo in entry.photos]
    # Each photo's layout once: stored with a new embedding and compared in photo_reused_reasons.
    layouts = {}
    for photo in all_photos:
        if photo.sha256 not in layouts:
            layouts[photo.sha256] = layout_signature(photo.image)
    vectors = image_embeddings_compute(images=all_photos, store=store_embeddings, layouts=layouts)
    known = {photo.sha256: vector for photo, vector in zip(all_photos, vectors)}
    requests, fields = _texts_requests(entries=entries, threshold=threshold, category_thresholds=category_thresholds)
    analyses = clip_analyses.analyses_compute(
        requests=requests, source=source, store_embeddings=store_embeddings, image_vectors=known,
        looks_like_top_k=listings_settings.SUGGESTION_TOP_K,
    )
    checks = [
        ListingCheck(listing=entry.listing, from_status=getattr(entry.listing, "status", ""), to_status="")
        for entry in entries
    ]
    for (number, name), analysis in zip(fields, analyses):
        setattr(checks[number], f"{name}_analysis", analysis)
        checks[number].threshold = analysis.threshold
    for check, entry in zip(checks, entries, strict=True):
        # A listing's own reasons are worded in its language, as its texts' are.
        with translation.override(entry.language):
            _photo_reasons_add(check=check, entry=entry, known=known, layouts=layouts)
    return checks


# Checks

def _texts_requests(*, entries, threshold, category_thresholds):
    """The analysis requests of the entries' titles and descriptions, and ``(entry number, field)`` of each."""
    requests, fields = [], []
    for number, entry in enumerate(entries):
        entry_threshold = _listing_threshold(entry.category, threshold, category_thresholds)
        for name, text in (("title", entry.title), ("description", entry.description)):
            if text and text.strip():
                requests.append(clip_analyses.AnalysisRequest(
                    image=entry.photos[0], text=text, threshold=entry_threshold, subject=entry.listing,
                    alternatives=entry.photos[1:], category=entry.category or "", language=entry.language,
                ))
                fields.append((number, name))
    return requests, fields


def _photo_reasons_add(*, check, entry, known, layouts):
    """A check's photos and its listing-level reasons: category, photos of one item, reused photos."""
    photo_vectors = [known[photo.sha256] for photo in entry.photos]
    check.photos = list(zip(entry.photos, photo_vectors, strict=True))
    check.layouts = {photo.sha256: layouts[photo.sha256] for photo in entry.photos}
    conflict = verdicts.category_conflict(category=entry.category, photos=entry.photos, vectors=photo_vectors)
    check.listing_reasons = ([conflict] if conflict else []) + verdicts.photos_differ(vectors=photo_vectors)
    if check.listing is not None:
        check.photo_reasons = photo_reused_reasons(listing=check.listing, photos=check.photos, layouts=check.layouts)


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
    primary_photos = [listing_photo_read(listing=listing) for listing in listings]
    checks = listings_score(listings=listings, primary_photos=primary_photos, source=source, threshold=threshold)
    with transaction.atomic():
        return listings_check_save(checks=checks)


def listing_image_decode(*, listing):
    """The listing's stored image through ``decode_image``; raises the ``ClipcheckError`` saying why not."""
    try:
        return decode_image(listing_image_read(listing=listing))
    except ClipcheckError as exc:
        logger.warning("Listing %s cannot be checked: %s", listing.pk, exc.message)
        raise


def listing_photo_read(*, listing):
    """``listing_image_decode`` as a ``PhotoRead``: an error is kept, not raised."""
    try:
        return PhotoRead(image=listing_image_decode(listing=listing))
    except ClipcheckError as exc:
        return PhotoRead(error=exc)


def listing_image_prepare(*, listing):
    """``listing_image_decode`` with the model's input prepared too (``image_prepare``)."""
    return image_prepare(image=listing_image_decode(listing=listing))


def listings_score(*, listings, primary_photos, source, threshold=None, store_embeddings=True,
                   category_thresholds=None):
    """Run the model for listings whose images are decoded; nothing is saved.

    ``primary_photos[i]`` is the ``PhotoRead`` of ``listings[i]``'s primary
    photo (a check whose photo could not be read gets its ``error``); the
    listing's other photos are read here. The checks carry
    unsaved analyses, the listing-level reasons and the status the listing
    would move to; ``listings_check_save`` stores them.

    The threshold of a listing: ``category_thresholds[listing.category]``
    when given and present, else ``threshold``; with neither, the default
    threshold of the listing's category (``default_threshold``).
    """
    others = listings_other_photos(listings=[
        listing for listing, primary in zip(listings, primary_photos, strict=True) if primary.error is None
    ])
    checks, entries = [], []
    for listing, primary in zip(listings, primary_photos, strict=True):
        extra = others.get(listing.pk, []) if primary.error is None else []
        error = primary.error if primary.error is not None else next(
            (photo.error for photo in extra if photo.error is not None), None
        )
        check = ListingCheck(listing=listing, from_status=listing.status, to_status=listing.status, error=error)
        checks.append(check)
        if error is None:
            entries.append(ListingTexts.of_listing(listing, photos=[primary.image, *(photo.image for photo in extra)]))
    scored = iter(_listings_texts_check(
        entries=entries, source=source, threshold=threshold, store_embeddings=store_embeddings,
        category_thresholds=category_thresholds,
    ) if entries else [])
    for index, check in enumerate(checks):
        if check.error is None:
            checks[index] = check = next(scored)
            check.from_status = check.listing.status
            check.to_status = _status_after(listing=check.listing, is_match=check.is_match)
    return checks


def listings_other_photos(*, listings):
    """``{listing pk: [PhotoRead]}`` of the photos after the primary, in order."""
    photos = {}
    for photo in ListingPhoto.objects.filter(listing__in=[l.pk for l in listings], position__gt=0).order_by(
        "listing_id", "position"
    ):
        what = f"Photo {photo.position + 1} of listing {photo.listing_id}"
        try:
            read = PhotoRead(image=decode_image(_stored_image_read(photo.image, what)))
        except ClipcheckError as exc:
            logger.warning("Listing %s cannot be checked: %s", photo.listing_id, exc.message)
            read = PhotoRead(error=exc)
        photos.setdefault(photo.listing_id, []).append(read)
    return photos


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
            check.listing_reasons = []
            continue
        to_store += check.analyses
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
        listing=fresh, check=check, image_sha256=fresh.image_sha256, texts_sha256=fresh.texts_sha256,
    )


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
    return _stored_image_read(listing.image, f"The image of listing {listing.pk}")


def _stored_image_read(field_file, what):
    limit = clip_settings.MAX_UPLOAD_BYTES
    if not field_file.name:
        raise ListingImageUnavailable(f"{what} is missing.")
    try:
        with field_file.storage.open(field_file.name, "rb") as handle:
            return handle.read(limit + 1)
    except Exception as exc:  # each storage backend raises its own errors
        raise ListingImageUnavailable(f"{what} cannot be read from storage: {exc.__class__.__name__}.") from exc


def _status_after(*, listing, is_match):
    return status_after_check(
        status=listing.status,
        moderated=listing.is_moderated,
        content_changed=listing.content_changed_since_decision(),
        is_match=is_match,
    )


def _listing_apply_check(*, listing, check, image_sha256, texts_sha256):
    """Store a check's verdict on the listing; returns the status it moved to."""
    listing.image_sha256 = image_sha256
    from_status = listing.status
    listing.status = _status_after(listing=listing, is_match=check.is_match)
    if listing.status == Status.APPROVED and from_status != Status.APPROVED:
        # A random share of the machine's approvals goes to people too.
        review.listing_sample_for_review(listing=listing)
    listing.title_score = check.title_analysis.similarity_score if check.title_analysis else None
    listing.description_score = check.description_analysis.similarity_score if check.description_analysis else None
    listing.clip_verdict = Analysis.Verdict.MATCH if check.is_match else Analysis.Verdict.MISMATCH
    listing.checked_threshold = check.threshold
    listing.match_quality = scoring.match_quality(check.weakest_score, check.threshold)
    listing.reasons = check.reasons
    listing.checked_at = timezone.now()
    listing.checked_model = check.analyses[0].model
    listing.checked_image_sha256 = image_sha256
    listing.checked_texts_sha256 = texts_sha256
    listing.save(update_fields=[
        "status", "title_score", "description_score", "clip_verdict", "match_quality", "checked_threshold",
        "reasons", "checked_at", "checked_model", "image_sha256", "checked_image_sha256", "checked_texts_sha256",
        "review_sampled",
        "updated_at",
    ])
    return listing.status


# Saves (the admin's change form)

def listing_save(*, listing, image_sha256=None, source=Analysis.Source.ADMIN):
    """Save a created or edited listing and re-check it when its image or texts changed.

    ``image_sha256`` is given when a new image was attached. Returns the
    ``ListingCheck``, or None when nothing the check depends on changed.
    """
    if image_sha256 is not None:
        listing.image_sha256 = image_sha256
    with transaction.atomic():
        listing.save()
        # The primary photo is also the listing's first ListingPhoto.
        ListingPhoto.objects.update_or_create(
            listing=listing, position=0,
            defaults={"image": listing.image.name, "image_sha256": listing.image_sha256},
        )
    if not listing.content_changed_since_check():
        return None
    return listing_check(listing=listing, source=source)


# Moderation

def listings_decide(*, listings, moderator, to_status, note="", reason_code=""):
    """Record a moderator's decision on listings; returns how many changed.

    Listings already in ``to_status`` are left alone (no decision recorded),
    and so are listings another moderator holds (the claim check of every
    decision path, ``review.decision_record``).
    """
    changed = 0
    with transaction.atomic():
        # Claims are compared on the database's clock (``db_now``), never this server's.
        locked = Listing.objects.select_for_update().annotate(db_now=Now())
        for listing in locked.filter(pk__in=[listing.pk for listing in listings]):
            # A sampled approval waiting for review is decided even when approved again.
            if listing.status == to_status and not (listing.review_sampled and not listing.is_moderated):
                continue
            try:
                review.decision_record(
                    listing=listing, moderator=moderator, to_status=to_status, note=note, reason_code=reason_code,
                )
            except ReviewConflict:
                continue  # held by another moderator: theirs to decide
            changed += 1
    return changed


def listings_flag_mismatches(*, listings, moderator, note=""):
    """Send the listings whose latest check found a mismatch to the review queue."""
    mismatched = [listing for listing in listings if listing.clip_verdict == Analysis.Verdict.MISMATCH]
    return listings_decide(listings=mismatched, moderator=moderator, to_status=Status.NEEDS_REVIEW, note=note)
