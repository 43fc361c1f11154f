"""The review workbench's logic: the queue, claims, decisions, undo and sampling.

- The queue: listings in ``needs_review`` plus machine-approved listings the
  random sample sent to people (``review_sampled``) that no moderator has
  decided yet; served oldest first (``created_at``, then ``id``).
- Claims: ``review_claim_next`` gives a moderator the oldest listing nobody
  else holds and holds it for ``LISTINGS["REVIEW_CLAIM_SECONDS"]``. The
  claim is one conditional UPDATE (``... WHERE claim expired or free``):
  atomic on SQLite and PostgreSQL alike, so two moderators never get the
  same listing; a claim simply expires. Claims are set and compared on the
  database's clock (``Now()``, read in the statement that locks the row),
  never a web server's: a server whose clock is minutes off neither takes
  another moderator's claim nor holds its own too long.
- Decisions (``review_decide``, and the changelist actions through
  ``decision_record``) store who, when, from/to, reason code, note, the
  scores, threshold and reasons seen, the listing's category and whether the
  label came from the sample; each one is also a Django ``LogEntry`` (admin
  log and the listing's history).
- ``review_undo`` reverts a moderator's latest decision: a new decision with
  reason code ``undo`` is recorded, the old one is marked undone (it stops
  being a calibration label) and the listing is claimed again by that
  moderator. Nothing is deleted.
"""

import random
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.contrib.admin.models import CHANGE, LogEntry
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import Exists, Min, Q, QuerySet
from django.db.models.functions import Now
from django.utils import timezone

from clipcheck.services.thresholds import default_threshold
from listings import metrics
from listings.appeals import appeal_close, appeal_reopen, open_appeal_contesting
from listings.drift import decision_overturns
from listings.errors import ReviewConflict, ReviewInvalid
from listings.models import (
    UNDO_REASON_CODE,
    Listing,
    ModerationDecision,
    first_review_filter,
    open_appeals,
    review_queue_filter,
)
from listings.settings import listings_settings

Status = Listing.Status

# The random source of the review sample; tests replace it (``sample_random.random``).
sample_random = random.Random()

DECISIONS = {"approve": Status.APPROVED, "reject": Status.REJECTED}


def review_queue() -> QuerySet[Listing]:
    return Listing.objects.filter(review_queue_filter()).order_by("created_at", "id")


def _not_contesting(moderator: AbstractBaseUser) -> Q:
    """Leaves out a listing whose open appeal contests a decision of ``moderator``: another moderator decides it."""
    return ~Q(Exists(open_appeals(decision__moderator=moderator)))


def _unclaimed(now: datetime) -> Q:
    return Q(claimed_until__isnull=True) | Q(claimed_until__lte=now)


def _locked_with_clock(rows: QuerySet[Any]) -> Any:
    """The first of ``rows`` locked for update, with the database's clock read
    by the same statement as ``db_now``; None when there is none."""
    return rows.select_for_update().annotate(db_now=Now()).first()


def _database_clock(listing: Listing) -> datetime:
    """The database's clock as read with ``listing``'s lock (``db_now``), else read now."""
    db_now = getattr(listing, "db_now", None)
    if db_now is None:
        db_now = Listing.objects.filter(pk=listing.pk).annotate(db_now=Now()).values_list("db_now", flat=True).first()
    # A listing deleted meanwhile: no row for the guard to update, whatever the time.
    return db_now or timezone.now()


@dataclass(frozen=True)
class QueueStats:
    size: int
    oldest_seconds: float  # 0 when the queue is empty


def review_queue_stats(*, now: datetime | None = None) -> QueueStats:
    """The queue of first reviews (appeals have their own: ``listings.appeals.appeal_queue_stats``)."""
    now = now or timezone.now()
    stats = Listing.objects.filter(first_review_filter()).aggregate(oldest=Min("created_at"))
    size = Listing.objects.filter(first_review_filter()).count()
    oldest = stats["oldest"]
    return QueueStats(size=size, oldest_seconds=max((now - oldest).total_seconds(), 0.0) if oldest else 0.0)


def review_reason_codes() -> list[str]:
    return list(listings_settings.REVIEW_REASON_CODES)


def _claim_until(now: datetime) -> datetime:
    return now + timedelta(seconds=int(listings_settings.REVIEW_CLAIM_SECONDS))


def review_held(
    *, moderator: AbstractBaseUser, exclude: Iterable[int] = (), now: datetime | None = None
) -> Listing | None:
    """The queued listing this moderator holds, if any (a read: nothing is claimed or extended)."""
    now = now or Now()
    queue = Listing.objects.filter(review_queue_filter(), _not_contesting(moderator)).exclude(pk__in=list(exclude))
    return queue.filter(claimed_by=moderator, claimed_until__gt=now).order_by("created_at", "id").first()


def review_held_by_others(
    *, listings: QuerySet[Listing], moderator: AbstractBaseUser, now: datetime | None = None
) -> int:
    """How many of ``listings`` (a queryset) another moderator holds now."""
    now = now or Now()
    return listings.filter(claimed_until__gt=now).exclude(claimed_by=moderator).exclude(claimed_by__isnull=True).count()


def review_claim_next(
    *, moderator: AbstractBaseUser, exclude: Iterable[int] = (), now: datetime | None = None
) -> Listing | None:
    """Claim the oldest queued listing nobody else holds; None when there is none.

    A listing this moderator already holds comes first (a reload shows the
    same listing, its claim extended). ``exclude``: ids skipped this session.
    A moderator holds one listing at a time, even from two sessions at once:
    the moderator's row is locked for the claim (PostgreSQL; SQLite's
    IMMEDIATE transactions serialise every writer). An appeal is never
    offered to the moderator whose decision it contests.
    """
    with transaction.atomic():
        locked = _locked_with_clock(get_user_model().objects.filter(pk=moderator.pk))
        now = now or locked.db_now
        until = _claim_until(now)
        held = review_held(moderator=moderator, exclude=exclude, now=now)
        if held is not None:
            Listing.objects.filter(pk=held.pk, claimed_by=moderator).update(claimed_until=until)
            held.claimed_until = until
            return held
        queue = Listing.objects.filter(review_queue_filter(), _not_contesting(moderator)).exclude(pk__in=list(exclude))
        while True:
            candidates = list(
                queue.filter(_unclaimed(now)).order_by("created_at", "id").values_list("pk", flat=True)[:10]
            )
            if not candidates:
                return None
            for pk in candidates:
                # The condition is re-evaluated under the row lock the UPDATE
                # takes: whoever loses the race updates no row and tries the next.
                won = Listing.objects.filter(
                    review_queue_filter(), _not_contesting(moderator), _unclaimed(now), pk=pk
                ).update(
                    claimed_by=moderator, claimed_until=until
                )
                if won:
                    return Listing.objects.get(pk=pk)


def review_decided_since(*, moderator: AbstractBaseUser, since: datetime) -> int:
    """How many of this moderator's decisions since ``since`` are in force (undos and undone ones left out)."""
    return (
        ModerationDecision.objects.filter(moderator=moderator, decided_at__gte=since, undone_at__isnull=True)
        .exclude(reason_code=UNDO_REASON_CODE).count()
    )


def review_release(*, listing_id: int, moderator: AbstractBaseUser) -> int:
    """Give a claimed listing back (skip): another moderator may take it."""
    return Listing.objects.filter(pk=listing_id, claimed_by=moderator).update(claimed_by=None, claimed_until=None)


def review_decide(
    *, listing_id: int, moderator: AbstractBaseUser, decision: str, reason_code: str = "", note: str = "",
    require_claim: bool = True, expected_status: str | None = None, now: datetime | None = None,
) -> ModerationDecision:
    """Approve or reject one listing; returns the ``ModerationDecision``.

    ``decision`` is "approve" or "reject"; a rejection needs one of the
    configured reason codes. With ``require_claim`` the moderator must hold
    the listing (the review screen); otherwise (the change page) only a
    claim held by someone else refuses the decision. ``expected_status``: the
    status the moderator saw; a listing decided meanwhile is refused.
    """
    if decision not in DECISIONS:
        raise ReviewInvalid(f"Unknown decision {decision!r}; use approve or reject.")
    codes = review_reason_codes()
    if decision == "reject" and reason_code not in codes:
        raise ReviewInvalid(f"A rejection needs a reason code: one of {', '.join(codes)}.")
    if reason_code and reason_code not in codes:
        raise ReviewInvalid(f"Unknown reason code {reason_code!r}; use one of {', '.join(codes)}.")
    with transaction.atomic():
        listing = _locked_with_clock(Listing.objects.filter(pk=listing_id))
        if listing is None:
            raise ReviewInvalid(f"No listing {listing_id}.", status_code=404, code="not_found")
        if expected_status is not None and listing.status != expected_status:
            raise ReviewConflict(
                f"This listing was decided meanwhile: it is {listing.get_status_display().lower()} now. Reload it."
            )
        now = now or listing.db_now
        if _claimed_by_other(listing, moderator, now):
            raise ReviewConflict("Another moderator holds this listing; it is not yours to decide.")
        _refuse_own_appeal(listing_id=listing.pk, moderator=moderator)
        if require_claim and (listing.claimed_by_id != moderator.pk or not listing.claimed_until or listing.claimed_until <= now):
            raise ReviewConflict("Your claim on this listing expired; open the next listing.")
        return decision_record(
            listing=listing, moderator=moderator, to_status=DECISIONS[decision], reason_code=reason_code,
            note=note, now=now, require_claim=require_claim,
        )


def _refuse_own_appeal(*, listing_id: int, moderator: AbstractBaseUser) -> None:
    if open_appeal_contesting(listing_id=listing_id, moderator=moderator) is not None:
        raise ReviewConflict(
            "The seller contests your decision on this listing: another moderator decides the appeal.",
            code="own_decision_appealed",
        )


def _claimed_by_other(listing: Listing, moderator: AbstractBaseUser, now: datetime) -> bool:
    return listing.claimed_by_id not in (None, moderator.pk) and listing.claimed_until and listing.claimed_until > now


def decision_record(
    *, listing: Listing, moderator: AbstractBaseUser, to_status: Any, reason_code: str = "", note: str = "",
    now: datetime | None = None, require_claim: bool = False,
) -> ModerationDecision:
    """Store a decision on a locked listing, update the listing, log it, release its claim.

    The listing changes by one conditional UPDATE: only from the status read
    and while nobody else holds it (and, with ``require_claim``, while this
    moderator does), so a decision made meanwhile through another path (the
    review screen, the change page, a changelist action) refuses this one; and
    never while the listing's open appeal contests a decision of this
    moderator. The decision closes the listing's open appeal (upheld or
    reversed).
    ``now`` defaults to the database's clock. ``to_status``: a ``Listing.Status`` member (``Any``: without
    Django's stubs mypy reads choices members as their (value, label) tuples).
    """
    now = now or _database_clock(listing)
    guard = Listing.objects.filter(_not_contesting(moderator), pk=listing.pk, status=listing.status)
    guard = guard.filter(claimed_by=moderator, claimed_until__gt=now) if require_claim else guard.filter(
        Q(claimed_by__isnull=True) | Q(claimed_by=moderator) | Q(claimed_until__isnull=True) | Q(claimed_until__lte=now)
    )
    changed = guard.update(
        status=to_status, moderated_by=moderator, moderated_at=now, moderation_note=note,
        moderated_content_sha256=listing.content_sha256, claimed_by=None, claimed_until=None, updated_at=now,
    )
    if not changed:
        _refuse_own_appeal(listing_id=listing.pk, moderator=moderator)
        raise ReviewConflict("This listing was decided or claimed meanwhile; reload it.")
    decision = ModerationDecision.objects.create(
        listing=listing,
        moderator=moderator,
        from_status=listing.status,
        to_status=to_status,
        note=note,
        reason_code=reason_code,
        title_score=listing.title_score,
        description_score=listing.description_score,
        threshold=default_threshold(category=listing.category),
        model=listing.checked_model,
        reasons=listing.reasons or [],
        category=listing.category,
        sampled=listing.review_sampled and listing.status == Status.APPROVED and not listing.is_moderated,
    )
    appeal_close(listing=listing, decision=decision)
    listing.status = to_status
    listing.moderated_by, listing.moderated_at, listing.moderation_note = moderator, now, note
    listing.moderated_content_sha256 = listing.content_sha256
    listing.claimed_by, listing.claimed_until, listing.updated_at = None, None, now
    decision_log(decision=decision, listing=listing, moderator=moderator)
    transaction.on_commit(lambda: metrics.REVIEW_DECISIONS.labels(
        reason_code=reason_code or "none", to_status=to_status
    ).inc())
    if decision_overturns(from_status=decision.from_status, to_status=to_status, sampled=decision.sampled):
        kind = "sampled_rejected" if decision.sampled else "flag_approved"
        transaction.on_commit(lambda: metrics.REVIEW_OVERTURNS.labels(kind=kind, reason_code=reason_code or "none").inc())
    return decision


def decision_log(*, decision: ModerationDecision, listing: Listing, moderator: AbstractBaseUser) -> None:
    """The decision as a Django admin ``LogEntry``: the admin log and the listing's history."""
    message = f"Moderation: {decision.from_status} → {decision.to_status}"
    if decision.reason_code:
        message += f" ({decision.reason_code})"
    if decision.note:
        message += f": {decision.note}"
    LogEntry.objects.log_actions(
        user_id=moderator.pk, queryset=[listing], action_flag=CHANGE, change_message=message, single_object=True
    )


def review_undo(*, moderator: AbstractBaseUser, now: datetime | None = None) -> Listing:
    """Undo this moderator's latest decision; returns the listing, claimed again by them."""
    with transaction.atomic():
        latest = (
            ModerationDecision.objects.select_for_update()
            .filter(moderator=moderator, undone_at__isnull=True)
            .exclude(reason_code=UNDO_REASON_CODE)
            .order_by("-decided_at", "-id")
            .first()
        )
        if latest is None:
            raise ReviewConflict("You have no decision left to undo.")
        listing = _locked_with_clock(Listing.objects.filter(pk=latest.listing_id))
        now = now or listing.db_now
        newer = listing.decisions.filter(pk__gt=latest.pk).exists()
        if newer or listing.status != latest.to_status:
            raise ReviewConflict("This listing changed after your decision; it cannot be undone.")
        undo = ModerationDecision.objects.create(
            listing=listing, moderator=moderator, from_status=listing.status, to_status=latest.from_status,
            reason_code=UNDO_REASON_CODE, note=f"Undoes decision {latest.pk}.", title_score=listing.title_score,
            description_score=listing.description_score, threshold=latest.threshold, model=listing.checked_model,
            reasons=listing.reasons or [], category=listing.category,
        )
        latest.undone_at = now
        latest.save(update_fields=["undone_at"])
        appeal_reopen(decision=latest)
        previous = (
            listing.decisions.filter(undone_at__isnull=True, pk__lt=latest.pk)
            .exclude(reason_code=UNDO_REASON_CODE)
            .order_by("-decided_at", "-id")
            .first()
        )
        listing.status = latest.from_status
        if previous is None:
            listing.moderated_by, listing.moderated_at, listing.moderation_note = None, None, ""
            listing.moderated_content_sha256 = ""
        else:
            listing.moderated_by_id, listing.moderated_at = previous.moderator_id, previous.decided_at
            listing.moderation_note = previous.note
        listing.claimed_by, listing.claimed_until = moderator, _claim_until(now)
        listing.save(update_fields=[
            "status", "moderated_by", "moderated_at", "moderation_note", "moderated_content_sha256",
            "claimed_by", "claimed_until", "updated_at",
        ])
        decision_log(decision=undo, listing=listing, moderator=moderator)
    return listing


def listing_sample_for_review(*, listing: Listing, rate: float | None = None) -> bool:
    """Whether a listing the machine just approved also goes to people (and mark it)."""
    rate = listings_settings.REVIEW_SAMPLE_RATE if rate is None else rate
    if listing.review_sampled or listing.is_moderated or not rate:
        return False
    if sample_random.random() < rate:
        listing.review_sampled = True
        return True
    return False
