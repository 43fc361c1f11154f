"""Statements of reasons: one per restriction, in the DSA Transparency Database's fields.

What is a restriction (docs/compliance.md says why):

- **A moderator's rejection** (a ``ModerationDecision`` to ``rejected``) is:
  the listing stops being shown. One statement per rejection, built from
  the decision record alone, so the same decision always gives the same
  statement and the same ``puid``.
- **Not** the machine's hold: a check that finds reasons sends the listing
  to ``needs_review``, where a person decides it. The machine never rejects;
  the hold is the review the decision comes out of, and the rejection's
  statement says that automated means detected it (``automated_detection``
  "Yes", ``AUTOMATED_DECISION_PARTIALLY``).
- An undone rejection is no restriction (it has no statement), nor is an
  undo, nor a decision that leaves a rejected listing rejected.

No personal data: a statement names no seller or moderator and quotes no
free text. ``decision_facts`` is written from the machine's reasons through
the registry of reason types (``clipcheck.reasons``), each reason as the
seller may read it (``reasons_for_seller``), with only the marketplace's own
words quoted (its categories and attribute values: a category or word the
seller typed is replaced by a neutral phrase), and e-mail addresses, phone
numbers and web addresses scrubbed from the result as a last guard. The
moderator's note, the listing's title, description and ids never appear.
"""

import hashlib
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from django.db.models import QuerySet

from clipcheck import reasons as reason_kinds
from clipcheck.reasons import reason_display, reason_label, reason_type
from clipcheck.settings import clip_settings
from listings.models import UNDO_REASON_CODE, Listing, ModerationDecision
from listings.settings import DEFAULT_STATEMENT_REASON_CODES, listings_settings
from listings.similarity import reasons_for_seller
from listings.statement_rules import enumeration_label, field_rules

Status = Listing.Status

CONTENT_TYPE = ["CONTENT_TYPE_IMAGE", "CONTENT_TYPE_PRODUCT", "CONTENT_TYPE_TEXT"]  # a listing: photos and texts
FALLBACK_REASON_CODE = "other"
FACTS_LIMIT = field_rules()["decision_facts"]["max"]

# What replaces a word the seller typed (evidence kind WORD) when the marketplace's own words lack it.
SELLERS_WORD = {"category": "the category given", "text_says": "a word of the text"}
SELLERS_WORD_DEFAULT = "a word not quoted here"
# Evidence never shown in a statement: other listings, and who their sellers are.
HIDDEN_KINDS = {reason_kinds.LISTING, reason_kinds.FLAG}

REMOVED = "[removed]"
EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+", re.UNICODE)
WEB_ADDRESS = re.compile(r"\b(?:https?://|www\.)\S+", re.I)
HANDLE = re.compile(r"(?<![\w@])@[A-Za-z0-9_.]{2,}")
# A phone number: 7 or more digits, maybe with +, spaces, dots, dashes or brackets; never scores (0.250).
PHONE = re.compile(r"(?<![\w.])\+?\(?\d[\d\s().\-/]{5,}\d(?![\w.])")
SCORE = re.compile(r"(?<!\d)[01]\.\d")


def restriction_decisions(
    *, since: datetime | None = None, until: datetime | None = None
) -> QuerySet[ModerationDecision]:
    """The decisions that restricted a listing, oldest first: rejections, not undone, that changed the status.

    ``since`` <= decided_at < ``until`` when given.
    """
    decisions = (
        ModerationDecision.objects.filter(to_status=Status.REJECTED, undone_at__isnull=True)
        .exclude(reason_code=UNDO_REASON_CODE)
        .exclude(from_status=Status.REJECTED)
        .select_related("listing")
        .order_by("decided_at", "id")
    )
    if since is not None:
        decisions = decisions.filter(decided_at__gte=since)
    if until is not None:
        decisions = decisions.filter(decided_at__lt=until)
    return decisions


def decision_puid(decision: ModerationDecision, *, namespace: str | None = None) -> str:
    """The statement's platform unique identifier: the installation's namespace, the decision's id
    and a digest of what identifies the decision (id, listing, time). Deterministic; a database
    restored empty, whose ids start again, gives different puids for its new decisions."""
    namespace = namespace or listings_settings.STATEMENT_PUID_NAMESPACE
    decided = decision.decided_at.astimezone(UTC).strftime("%Y%m%dT%H%M%S%f")
    digest = hashlib.sha256(f"{namespace}:{decision.pk}:{decision.listing_id}:{decided}".encode()).hexdigest()
    return f"{namespace}-{decision.pk}-{digest[:12]}"


def reason_code_terms(code: str) -> dict[str, Any]:
    """The statement category, keywords, ground and explanation of a review reason code."""
    table = listings_settings.STATEMENT_REASON_CODES
    return table.get(code) or table.get(FALLBACK_REASON_CODE) or DEFAULT_STATEMENT_REASON_CODES[FALLBACK_REASON_CODE]


def machine_flagged(decision: ModerationDecision) -> bool:
    """True when the machine's check sent the listing to people: the decision saw its reasons.
    A sampled machine approval was not flagged (the sample is random)."""
    return bool(decision.reasons) and not decision.sampled


def decision_statement(decision: ModerationDecision) -> dict[str, Any]:
    """The statement of reasons for one restriction, in the database's fields (``POST /api/v1/statement``)."""
    terms = reason_code_terms(decision.reason_code)
    flagged = machine_flagged(decision)
    settings = listings_settings
    statement = {
        "decision_visibility": sorted(set(settings.STATEMENT_DECISION_VISIBILITY)),
        "decision_ground": "DECISION_GROUND_INCOMPATIBLE_CONTENT",
        "decision_ground_reference_url": settings.STATEMENT_TERMS_URL or None,
        "incompatible_content_ground": terms["ground"],
        "incompatible_content_explanation": terms["explanation"],
        "content_type": list(CONTENT_TYPE),
        "category": terms["category"],
        "category_specification": sorted(set(terms.get("category_specification") or [])) or None,
        "decision_facts": decision_facts(decision),
        "source_type": "SOURCE_VOLUNTARY",
        "automated_detection": "Yes" if flagged else "No",
        "automated_decision": "AUTOMATED_DECISION_PARTIALLY" if flagged else "AUTOMATED_DECISION_NOT_AUTOMATED",
        "content_date": decision.listing.created_at.astimezone(UTC).date().isoformat(),
        "application_date": decision.decided_at.astimezone(UTC).date().isoformat(),
        "territorial_scope": sorted(set(settings.STATEMENT_TERRITORIAL_SCOPE or [])) or None,
        "content_language": settings.STATEMENT_CONTENT_LANGUAGE or None,
        "puid": decision_puid(decision),
    }
    # What is not known is left out, not sent as null.
    return {field: value for field, value in statement.items() if value is not None}


# decision_facts

def decision_facts(decision: ModerationDecision) -> str:
    """What the decision relied on, in plain words: the moderator's decision and its reason, how the
    listing came to be reviewed, and the machine's reasons with their evidence. At most 5000 characters."""
    opening = _decision_sentence(decision)
    reasons = [reason for reason in reasons_for_seller(decision.reasons or []) if isinstance(reason, dict)]
    if decision.sampled:
        how = (
            "The automated check, which compares a listing's photos with its title, description and category, "
            "had found nothing wrong and approved the listing; a person reviewed it as part of a random sample "
            "of the check's approvals."
        )
    elif machine_flagged(decision):
        how = (
            "The automated check, which compares a listing's photos with its title, description and category, "
            "sent the listing to a person for review; it rejects nothing by itself. It found:"
        )
    else:
        how = "The automated check had not flagged the listing; a moderator reviewed it."
    vocabulary = marketplace_words()
    lines = [
        tuple(personal_data_scrub(part) for part in _reason_line(reason, vocabulary))
        for reason in (reasons if machine_flagged(decision) else [])
    ]
    return _fit([opening, how], lines, limit=FACTS_LIMIT)


def _decision_sentence(decision: ModerationDecision) -> str:
    visibility = ", ".join(
        enumeration_label("DECISION_VISIBILITIES", value).lower()
        for value in sorted(set(listings_settings.STATEMENT_DECISION_VISIBILITY))
    )
    sentence = f"A moderator reviewed this listing and rejected it ({visibility})"
    if decision.reason_code:
        sentence += f", for this reason: {reason_label(decision.reason_code)}"
    return sentence + "."


def marketplace_words() -> set[str]:
    """The words a statement may quote: the marketplace's categories and attribute names and values."""
    words = {str(category).lower() for category in clip_settings.CATEGORIES}
    for attribute, values in (clip_settings.ATTRIBUTES or {}).items():
        words.add(str(attribute).lower())
        words.update(str(value).lower() for value in values)
    return words


def reason_in_marketplace_words(reason: Mapping[str, Any], vocabulary: set[str]) -> dict[str, Any]:
    """``reason`` with every word the seller may have typed replaced by a neutral phrase (evidence of
    kind WORD or CATEGORIES that is not one of ``vocabulary``), and evidence for moderators dropped."""
    known = reason_type(reason.get("code"))
    if known is None:
        return {"code": reason.get("code"), "field": reason.get("field", "")}
    guarded = {"code": reason.get("code"), "field": reason.get("field", "")}
    for evidence in known.evidence:
        if evidence.key not in reason or not evidence.shown or evidence.kind in HIDDEN_KINDS:
            continue
        value = reason[evidence.key]
        if evidence.kind == reason_kinds.WORD and str(value).lower() not in vocabulary:
            value = SELLERS_WORD.get(evidence.key, SELLERS_WORD_DEFAULT)
        elif evidence.kind == reason_kinds.CATEGORIES:
            value = [
                match for match in value or []
                if isinstance(match, dict) and str(match.get("category", "")).lower() in vocabulary
            ]
        guarded[evidence.key] = value
    return guarded


def _reason_line(reason: Mapping[str, Any], vocabulary: set[str]) -> tuple[str, str]:
    guarded = reason_in_marketplace_words(reason, vocabulary)
    shown = reason_display(guarded)
    known = reason_type(guarded.get("code"))
    try:
        sentence = known.sentence(guarded) if known else ""
    except (KeyError, TypeError, ValueError, IndexError):
        sentence = ""  # evidence kept from people (another listing): the label says it
    line = f"- {shown['label']} ({shown['field_label']})"
    line += f": {sentence}" if sentence else "."
    evidence = "; ".join(f"{row['label']}: {row['value']}" for row in shown["evidence"])
    return (line, f" Evidence: {evidence}." if evidence else "")


def _fit(head: Sequence[str], lines: Sequence[tuple[str, ...]], *, limit: int) -> str:
    """``head`` and the reason lines joined, within ``limit`` characters: evidence goes first, then
    the last reasons (counted in a closing sentence)."""
    for with_evidence in (True, False):
        body = [line + (evidence if with_evidence else "") for line, evidence in lines]
        text = "\n".join([*head, *body])
        if len(text) <= limit:
            return text
    kept = list(body)
    while kept:
        kept.pop()
        more = f"… and {len(body) - len(kept)} more reason(s)."
        text = "\n".join([*head, *kept, more])
        if len(text) <= limit:
            return text
    return "\n".join(head)[:limit]


def personal_data_scrub(text: str) -> str:
    """``text`` with e-mail addresses, web addresses, @handles and phone numbers replaced by "[removed]"."""
    for pattern in (EMAIL, WEB_ADDRESS, HANDLE):
        text = pattern.sub(REMOVED, text)
    return PHONE.sub(lambda match: REMOVED if _is_phone(match.group()) else match.group(), text)


def _is_phone(candidate: str) -> bool:
    return sum(character.isdigit() for character in candidate) >= 7 and not SCORE.search(candidate)
