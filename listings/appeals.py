"""Appeals: a seller contests a restriction of their listing (DSA Article 20), another moderator decides.

- ``appeal_create``: the seller of a rejected listing contests the rejection
  in force, once, within ``LISTINGS["APPEAL_WINDOW_DAYS"]`` of it, with a text
  of at most ``APPEAL_TEXT_MAX_LENGTH`` characters. The listing stays
  rejected (not shown) and returns to the review queue as an appeal.
- ``listings.review`` never offers an open appeal to, nor lets it be decided
  by, the moderator who made the contested decision; the next approval or
  rejection of the listing closes it (reversed or upheld,
  ``appeal_close``).
- ``listing_statements``: what the seller reads: each statement of reasons of
  the listing, its facts ending with the appeal and its outcome (the
  statement sent to the Transparency Database stays as it was sent).
"""

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.db.models import Min
from django.utils import timezone

from listings.errors import AppealInvalid, AppealRefused
from listings.models import Appeal, Listing, ModerationDecision
from listings.settings import listings_settings
from listings.statements import FACTS_LIMIT, decision_statement, restriction_decisions

Status = Listing.Status
OUTCOMES = {Status.APPROVED: Appeal.Outcome.REVERSED, Status.REJECTED: Appeal.Outcome.UPHELD}


def appeal_deadline(decision: ModerationDecision) -> datetime:
    """The last moment the seller may contest ``decision``."""
    return decision.decided_at + timedelta(days=int(listings_settings.APPEAL_WINDOW_DAYS))


def restriction_in_force(listing: Listing) -> ModerationDecision | None:
    """The rejection a rejected listing is restricted by now (its latest restriction), else None."""
    if listing.status != Status.REJECTED:
        return None
    return restriction_decisions().filter(listing=listing).order_by("-decided_at", "-id").first()


def appeal_create(*, listing: Listing, text: str | None, now: datetime | None = None) -> Appeal:
    """Record the seller's appeal against the restriction in force on ``listing``; returns the ``Appeal``.

    Raises ``AppealInvalid`` (400) for an empty or too long text and
    ``AppealRefused`` (409) when there is nothing to contest, the window has
    closed or the restriction was contested already.
    """
    text = (text or "").strip()
    limit = int(listings_settings.APPEAL_TEXT_MAX_LENGTH)
    if not text:
        raise AppealInvalid("Say why the decision is wrong: the text is empty.", code="appeal_text_empty")
    if len(text) > limit:
        raise AppealInvalid(
            f"The text has {len(text)} characters; at most {limit} are taken.", code="appeal_text_too_long",
            detail={"max_length": limit, "length": len(text)},
        )
    now = now or timezone.now()
    with transaction.atomic():
        locked = Listing.objects.select_for_update().filter(pk=listing.pk).first()
        decision = restriction_in_force(locked) if locked is not None else None
        if decision is None:
            raise AppealRefused("This listing is not restricted: there is no decision to contest.",
                                code="appeal_nothing_to_contest")
        if Appeal.objects.filter(decision=decision).exists():
            raise AppealRefused("This decision was contested already; it can be contested once.",
                                code="appeal_exists")
        deadline = appeal_deadline(decision)
        if now > deadline:
            raise AppealRefused(
                f"The decision can be contested for {listings_settings.APPEAL_WINDOW_DAYS} days; that time ended "
                f"on {deadline.astimezone(UTC).date().isoformat()}.",
                code="appeal_too_late", detail={"deadline": deadline.astimezone(UTC).isoformat()},
            )
        try:
            with transaction.atomic():
                return Appeal.objects.create(listing=locked, decision=decision, text=text, created_at=now)
        except IntegrityError:  # the same seller's other request won
            raise AppealRefused("This decision was contested already; it can be contested once.",
                                code="appeal_exists") from None


def appeal_close(*, listing: Listing, decision: ModerationDecision) -> int:
    """Close the listing's open appeal with ``decision`` (a moderator's approval reverses the contested
    rejection, a rejection upholds it); any other decision leaves it open. Called inside the decision's
    transaction."""
    outcome = OUTCOMES.get(decision.to_status)
    if outcome is None:
        return 0
    return Appeal.objects.filter(listing=listing, outcome=Appeal.Outcome.OPEN).update(
        outcome=outcome, decided_by=decision.moderator, decided_at=decision.decided_at, outcome_decision=decision,
    )


def appeal_reopen(*, decision: ModerationDecision) -> int:
    """An undone decision closed no appeal: the appeal it closed is open again."""
    return Appeal.objects.filter(outcome_decision=decision).update(
        outcome=Appeal.Outcome.OPEN, decided_by=None, decided_at=None, outcome_decision=None,
    )


def open_appeal_contesting(*, listing_id: int, moderator: AbstractBaseUser) -> Appeal | None:
    """The open appeal of the listing against a decision of ``moderator``, if any."""
    return Appeal.objects.filter(
        listing_id=listing_id, outcome=Appeal.Outcome.OPEN, decision__moderator=moderator,
    ).first()


@dataclass(frozen=True)
class AppealQueueStats:
    size: int
    oldest_seconds: float  # since the oldest open appeal was made; 0 when none is open


def appeal_queue_stats(*, now: datetime | None = None) -> AppealQueueStats:
    now = now or timezone.now()
    waiting = Appeal.objects.filter(outcome=Appeal.Outcome.OPEN, listing__status=Status.REJECTED)
    stats = waiting.aggregate(oldest=Min("created_at"))
    oldest = stats["oldest"]
    return AppealQueueStats(
        size=waiting.count(), oldest_seconds=max((now - oldest).total_seconds(), 0.0) if oldest else 0.0,
    )


# What the seller reads

def appeal_facts(appeal: Appeal) -> str:
    """The appeal and its outcome in words, for the end of the statement's facts."""
    made = appeal.created_at.astimezone(UTC).date().isoformat()
    sentence = f"The seller contested this decision on {made}"
    if appeal.outcome == Appeal.Outcome.OPEN:
        return sentence + "; a moderator other than the one who decided will review it."
    decided = appeal.decided_at.astimezone(UTC).date().isoformat()
    if appeal.outcome == Appeal.Outcome.REVERSED:
        return sentence + (f". A moderator other than the one who decided reviewed it on {decided} and reversed "
                           "the decision: the listing is shown again.")
    return sentence + (f". A moderator other than the one who decided reviewed it on {decided} and upheld "
                       "the decision.")


def seller_statement(decision: ModerationDecision, appeal: Appeal | None = None) -> dict[str, Any]:
    """The statement of ``decision`` as the seller reads it: its facts end with the appeal, if any."""
    statement = decision_statement(decision)
    if appeal is not None:
        closing = "\n" + appeal_facts(appeal)
        statement["decision_facts"] = statement["decision_facts"][: FACTS_LIMIT - len(closing)] + closing
    return statement


def listing_statements(listing: Listing, *, now: datetime | None = None) -> list[dict[str, Any]]:
    """Each restriction of ``listing``, oldest first: its statement (as the seller reads it), its appeal
    and until when it may be contested (None: not any more, or it is not the restriction in force)."""
    now = now or timezone.now()
    decisions = list(restriction_decisions().filter(listing=listing))
    appeals = {appeal.decision_id: appeal for appeal in Appeal.objects.filter(decision__in=decisions)}
    in_force = restriction_in_force(listing)
    rows = []
    for decision in decisions:
        appeal = appeals.get(decision.pk)
        deadline = appeal_deadline(decision)
        appealable = in_force is not None and decision.pk == in_force.pk and appeal is None and now <= deadline
        rows.append({
            "decision": decision, "statement": seller_statement(decision, appeal), "appeal": appeal,
            "appeal_until": deadline if appealable else None,
        })
    return rows
