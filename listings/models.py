"""Product listings, their CLIP check state and the moderators' decisions."""

import uuid
from pathlib import PurePosixPath
from typing import Any

from django.conf import settings
from django.db import models

from clipcheck.hashes import text_hash, texts_hash
from clipcheck.models import Analysis
from clipcheck.reasons import reason_label

# Suffixes a stored image may keep; anything else is stored as ".bin" so a
# crafted name can never make storage serve it as HTML or script.
IMAGE_SUFFIXES = {"jpg", "jpeg", "png", "webp", "gif", "bmp", "tif", "tiff"}
# Decoded format → stored suffix. MPO (a camera's JPEG with extra frames, e.g.
# a second lens or a preview) is a JPEG to every viewer: stored and served as one.
FORMAT_SUFFIXES = {
    "JPEG": "jpg", "MPO": "jpg", "PNG": "png", "WEBP": "webp", "GIF": "gif", "BMP": "bmp", "TIFF": "tiff",
}


def listing_image_path(instance: models.Model, filename: str) -> str:
    """A generated storage name: the client's file name is never used."""
    suffix = PurePosixPath(filename).suffix.lower().lstrip(".")
    return f"listings/{uuid.uuid4().hex}.{suffix if suffix in IMAGE_SUFFIXES else 'bin'}"


class Listing(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        APPROVED = "approved", "Approved"
        NEEDS_REVIEW = "needs_review", "Needs review"
        REJECTED = "rejected", "Rejected"

    # At least one of title and description is given (POST /upload checks it).
    title = models.CharField(max_length=200, blank=True)
    description = models.TextField(blank=True)
    category = models.CharField(max_length=100, blank=True)
    # The language its texts are written in (POST /upload's language or Accept-Language): every
    # check of them uses its vocabulary and words the seller's reasons in it (clipcheck.languages).
    language = models.CharField(max_length=16, default="en")
    price = models.DecimalField(max_digits=10, decimal_places=2, null=True, blank=True)
    # The primary photo (also the ListingPhoto at position 0).
    image = models.ImageField(upload_to=listing_image_path, max_length=255)
    image_sha256 = models.CharField(max_length=64, editable=False, help_text="SHA-256 of the stored image bytes.")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING, db_index=True)
    # Who submitted it (the authenticated user of POST /upload); a photo
    # reused across sellers is the stronger signal (the photo_reused reason).
    seller = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="listings",
    )

    # The latest CLIP check.
    title_score = models.FloatField(null=True, blank=True, editable=False)
    description_score = models.FloatField(null=True, blank=True, editable=False)
    clip_verdict = models.CharField(max_length=16, choices=Analysis.Verdict.choices, blank=True, editable=False)
    # The quality band of the weaker of the two scores relative to the
    # threshold of that check (the changelist filter).
    match_quality = models.CharField(max_length=32, blank=True, editable=False)
    checked_threshold = models.FloatField(null=True, blank=True, editable=False)
    # The latest check's reasons: {"code", "field", "message", ...evidence}
    # objects, empty for a clean match.
    reasons = models.JSONField(default=list, blank=True, editable=False)
    checked_at = models.DateTimeField(null=True, blank=True, editable=False)
    # What that check used, so an audit skips listings nothing has changed for.
    checked_model = models.CharField(max_length=255, blank=True, editable=False)
    checked_image_sha256 = models.CharField(max_length=64, blank=True, editable=False)
    checked_texts_sha256 = models.CharField(max_length=64, blank=True, editable=False)

    # The latest moderator decision (the history is in ModerationDecision).
    moderated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+", editable=False
    )
    moderated_at = models.DateTimeField(null=True, blank=True, editable=False)
    moderation_note = models.TextField(blank=True, editable=False)
    # The image and texts that decision was about (see ``content_sha256``).
    moderated_content_sha256 = models.CharField(max_length=64, blank=True, editable=False)

    # The review workbench (listings.review): who holds the listing and
    # until when, and whether the machine approved it but a random sample
    # sent it to people too (unbiased calibration labels).
    claimed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+", editable=False
    )
    claimed_until = models.DateTimeField(null=True, blank=True, editable=False)
    review_sampled = models.BooleanField(
        default=False, editable=False, help_text="Machine-approved, sent to review by the random sample."
    )

    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        permissions = [("moderate_listing", "Can approve, reject or flag listings")]
        indexes = [models.Index(fields=["status", "created_at"], name="listing_status_created")]

    def __str__(self) -> str:
        return self.title or self.description[:60] or f"Listing {self.pk}"

    @property
    def texts_sha256(self) -> str:
        return texts_hash(self.title, self.description)

    @property
    def content_sha256(self) -> str:
        """The image and texts together: what a moderator's decision is about."""
        return text_hash(f"{self.image_sha256}:{self.texts_sha256}")

    @property
    def is_moderated(self) -> bool:
        return self.moderated_at is not None

    def content_changed_since_decision(self) -> bool:
        return self.is_moderated and self.moderated_content_sha256 != self.content_sha256

    @property
    def is_checked(self) -> bool:
        return self.checked_at is not None

    def content_changed_since_check(self) -> bool:
        """True when the image or a text differs from what the last check saw."""
        return (
            not self.is_checked
            or self.checked_image_sha256 != self.image_sha256
            or self.checked_texts_sha256 != self.texts_sha256
        )

    def needs_check(self, *, model: str) -> bool:
        return self.content_changed_since_check() or self.checked_model != model


class ListingPhoto(models.Model):
    """One photo of a listing; position 0 is the primary photo (``Listing.image``)."""

    listing = models.ForeignKey(Listing, on_delete=models.CASCADE, related_name="photos")
    image = models.ImageField(upload_to=listing_image_path, max_length=255)
    image_sha256 = models.CharField(max_length=64, editable=False, help_text="SHA-256 of the stored image bytes.")
    position = models.PositiveSmallIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["listing", "position"]
        constraints = [
            models.UniqueConstraint(fields=["listing", "position"], name="listing_photo_position_unique"),
        ]

    def __str__(self) -> str:
        return f"Photo {self.position + 1} of listing {self.listing_id}"


def first_review_filter() -> models.Q:
    """The listings waiting for a first review: needs review, plus machine
    approvals the random review sample sent to people and nobody decided yet."""
    return models.Q(status=Listing.Status.NEEDS_REVIEW) | models.Q(
        review_sampled=True, moderated_at__isnull=True, status=Listing.Status.APPROVED
    )


def open_appeals(**filters: Any) -> "models.QuerySet[Appeal]":
    """The appeals of the listing in the outer query (``OuterRef("pk")``) that nobody decided yet."""
    return Appeal.objects.filter(listing=models.OuterRef("pk"), outcome="", **filters)


def review_queue_filter() -> models.Q:
    """The listings waiting for a moderator: those waiting for a first review, plus
    rejected listings whose seller contested the rejection (an open ``Appeal``)."""
    return first_review_filter() | models.Q(models.Exists(open_appeals()), status=Listing.Status.REJECTED)


class ReviewQueueManager(models.Manager):
    def get_queryset(self) -> "models.QuerySet[Listing]":
        return super().get_queryset().filter(review_queue_filter())


class ReviewQueueItem(Listing):
    """The listings waiting for a moderator, oldest first (its own admin page)."""

    objects = ReviewQueueManager()

    class Meta:
        proxy = True
        ordering = ["created_at", "id"]
        verbose_name = "review queue item"
        verbose_name_plural = "needs review"


UNDO_REASON_CODE = "undo"


class ModerationDecision(models.Model):
    """One moderator decision; approved/rejected ones label the scores for
    calibrating the threshold (approved = match, rejected = mismatch)."""

    listing = models.ForeignKey(Listing, on_delete=models.CASCADE, related_name="decisions")
    moderator = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    decided_at = models.DateTimeField(auto_now_add=True, db_index=True)
    from_status = models.CharField(max_length=16, choices=Listing.Status.choices)
    to_status = models.CharField(max_length=16, choices=Listing.Status.choices)
    note = models.TextField(blank=True)
    # The check the moderator saw.
    title_score = models.FloatField(null=True, blank=True)
    description_score = models.FloatField(null=True, blank=True)
    threshold = models.FloatField(null=True, blank=True)
    model = models.CharField(max_length=255, blank=True)
    # Why (one of LISTINGS["REVIEW_REASON_CODES"], "undo" for an undo), the
    # verdict's reasons the moderator saw, the listing's category then, and
    # where the label comes from: flagged by the machine or sampled from its
    # approvals (only sampled labels are unbiased).
    reason_code = models.CharField(max_length=64, blank=True, db_index=True)
    reasons = models.JSONField(default=list, blank=True)
    category = models.CharField(max_length=100, blank=True)
    sampled = models.BooleanField(default=False)
    # Set when the moderator undid this decision: it is no label any more.
    undone_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-decided_at", "-id"]

    @property
    def reason_label(self) -> str:
        """The reason code in words (moderators read labels, never codes)."""
        return reason_label(self.reason_code) if self.reason_code else ""

    def __str__(self) -> str:
        return f"#{self.listing_id}: {self.get_from_status_display()} → {self.get_to_status_display()}"

    @property
    def label(self) -> str | None:
        """The calibration label: "match", "mismatch", or None for a flag or an undo."""
        if self.undone_at is not None or self.reason_code == UNDO_REASON_CODE:
            return None
        return {Listing.Status.APPROVED: "match", Listing.Status.REJECTED: "mismatch"}.get(self.to_status)


class ListingCheckFailure(models.Model):
    """A check that could not run: the image is missing, unreadable or not
    a decodable image. No ``Analysis`` exists for it; the audit records one
    row per failed listing per run (a rerun tries the listing again)."""

    listing = models.ForeignKey(Listing, on_delete=models.CASCADE, related_name="check_failures")
    source = models.CharField(max_length=16, choices=Analysis.Source.choices)
    code = models.CharField(max_length=64)
    message = models.TextField()
    model = models.CharField(max_length=255, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.listing_id}: {self.code}"


class StatementSubmission(models.Model):
    """A statement of reasons sent to the DSA Transparency Database (``manage.py clip_statements --submit``).

    One row per puid, made before the statement is sent (``sending``, the
    reservation that keeps two runs from sending it twice) and kept once the
    database accepted it (``created``, with its uuid) or answered that it
    holds that puid already (``existing``). A run that ends without knowing
    whether the database took what it sent leaves ``unconfirmed``; the next
    run asks the database before sending it again. A reservation left by a
    run that died is taken over once it is ``SENDING_STALE_SECONDS`` old.
    """

    class State(models.TextChoices):
        SENDING = "sending", "Being sent"
        UNCONFIRMED = "unconfirmed", "Sent, answer not received"
        CREATED = "created", "Created"
        EXISTING = "existing", "Already in the database"

    puid = models.CharField(max_length=500, unique=True)
    # The restriction; kept (null) when the listing and its decisions are deleted.
    decision = models.ForeignKey(
        ModerationDecision, null=True, on_delete=models.SET_NULL, related_name="statement_submissions",
    )
    state = models.CharField(max_length=16, choices=State.choices, default=State.SENDING)
    # The run (a random id) that reserved it, since when, and sent it.
    run = models.CharField(max_length=64, blank=True)
    reserved_at = models.DateTimeField()
    submitted_at = models.DateTimeField(null=True, blank=True, db_index=True)
    # The database's uuid for a statement it created; empty for one it already held.
    uuid = models.CharField(max_length=64, blank=True)
    # The statement as sent.
    statement = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-submitted_at", "-id"]

    def __str__(self) -> str:
        return f"{self.puid}: {self.get_state_display()}"


class Appeal(models.Model):
    """A seller's complaint against a restriction (DSA Article 20), decided by another moderator.

    One per contested decision, within ``LISTINGS["APPEAL_WINDOW_DAYS"]`` of it
    (``listings.appeals.appeal_create``). While it is open the rejected listing is
    back in the review queue, never offered to nor decidable by the moderator who
    made the contested decision (``listings.review``). The next decision on the
    listing closes it: an approval reverses the rejection, a rejection upholds it.
    """

    class Outcome(models.TextChoices):
        OPEN = "", "Waiting for a moderator"
        UPHELD = "upheld", "Upheld"
        REVERSED = "reversed", "Reversed"

    listing = models.ForeignKey(Listing, on_delete=models.CASCADE, related_name="appeals")
    decision = models.OneToOneField(ModerationDecision, on_delete=models.CASCADE, related_name="appeal")
    text = models.TextField()
    created_at = models.DateTimeField(db_index=True)
    outcome = models.CharField(max_length=16, choices=Outcome.choices, default=Outcome.OPEN, blank=True, db_index=True)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    # The decision that closed it (upheld: a rejection; reversed: an approval).
    outcome_decision = models.OneToOneField(
        ModerationDecision, null=True, blank=True, on_delete=models.SET_NULL, related_name="closed_appeal",
    )

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"Appeal against decision {self.decision_id} of listing {self.listing_id}: {self.get_outcome_display()}"
