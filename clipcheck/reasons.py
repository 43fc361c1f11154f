"""The registry of reason types: what each reason code means, in words.

A verdict's reasons are stored and answered as plain JSON objects (``code``,
``field``, ``message`` and the code's evidence, docs/verdicts.md). This module
says, once per code, how people read them: a human label, one sentence built
from the evidence for moderators, one for the seller (the suggestion), and
each evidence field's label and kind. The API schema's choices, the seller's
suggestion, the admin's and the review screen's wording and the reason table
of docs/verdicts.md all come from here; an app registers its own codes with
``reason_type_register`` (the project's item app does in its ``ready``), as a
model is registered with the admin.
"""

from collections.abc import Callable
from dataclasses import dataclass

from django.utils.translation import gettext_lazy

# Evidence kinds: how a value is shown to people.
SCORE = "score"  # judged against the reason's threshold: shown below it when it is
SUPPORT = "support"  # a score that supports the reason (never judged against the caption threshold)
THRESHOLD = "threshold"
WORD = "word"
CATEGORIES = "categories"  # [{category, score}]
COUNT = "count"
PHOTO = "photo"  # 0-based photo position
PASSAGE = "passage"  # {index, start, end}
LISTING = "listing"  # a listing id
FLAG = "flag"  # True / False / None (unknown)

FIELD_LABELS = {"text": "Text", "title": "Title", "description": "Description", "category": "Category", "photos": "Photos"}


@dataclass(frozen=True)
class Evidence:
    key: str
    label: str
    kind: str
    shown: bool = True  # False: for the API and tools only, never shown to people (hashes)


@dataclass(frozen=True)
class ReasonType:
    code: str
    label: str
    about: str  # one line for docs/verdicts.md
    evidence: tuple[Evidence, ...]
    sentence: Callable[[dict], str]  # for moderators, from the evidence
    suggestion: Callable[[dict, list], str | None]  # for the seller; None when another reason says it better


_REASON_TYPES: dict[str, ReasonType] = {}


def reason_type_register(reason_type: ReasonType) -> ReasonType:
    """Add ``reason_type`` to the registry (registering the same code again replaces it)."""
    _REASON_TYPES[reason_type.code] = reason_type
    return reason_type


def reason_types() -> list[ReasonType]:
    return list(_REASON_TYPES.values())


def reason_codes() -> list[str]:
    return list(_REASON_TYPES)


def reason_type(code) -> ReasonType | None:
    return _REASON_TYPES.get(code)


def reason_label(code) -> str:
    """The human label of ``code``; an unknown code (an old record) reads as words."""
    known = reason_type(code)
    return known.label if known else str(code or "").replace("_", " ").strip().capitalize() or "Unknown reason"


def field_label(field_name) -> str:
    return FIELD_LABELS.get(field_name, str(field_name or "").replace("_", " ").capitalize())


# The field a reason is about in a sentence, in the active language: a whole
# phrase each, as a language's grammar gives the article or possessive its gender.
_FIELD_THE = {"title": gettext_lazy("The title"), "description": gettext_lazy("The description")}
_FIELD_YOUR = {"title": gettext_lazy("your title"), "description": gettext_lazy("your description")}
_FIELD_OF = {"title": gettext_lazy("of the title"), "description": gettext_lazy("of the description")}


def field_the(reason) -> str:
    """``The title``, ``The description``, ``The text``: the field as a sentence's subject."""
    return str(_FIELD_THE.get(reason.get("field"), gettext_lazy("The text")))


def field_your(reason) -> str:
    """``your title``, ``your description``, ``your text``: the field as the seller calls it."""
    return str(_FIELD_YOUR.get(reason.get("field"), gettext_lazy("your text")))


def field_of(reason) -> str:
    """``of the title``, ``of the description``, ``of the text``."""
    return str(_FIELD_OF.get(reason.get("field"), gettext_lazy("of the text")))


def reason_sentence(reason: dict) -> str:
    """One sentence in words for moderators; the stored message when the evidence is incomplete."""
    known = reason_type(reason.get("code"))
    if known is not None:
        try:
            return known.sentence(reason)
        except (KeyError, TypeError, ValueError, IndexError):
            pass  # a record written by an older version: its message still says it
    return str(reason.get("message") or reason_label(reason.get("code")))


def reason_suggestion(reason: dict, reasons: list) -> str | None:
    known = reason_type(reason.get("code"))
    if known is None:
        return None
    try:
        return known.suggestion(reason, reasons)
    except (KeyError, TypeError, ValueError, IndexError):
        return None


def _categories_words(value) -> str:
    matches = [match for match in value if isinstance(match, dict)] if isinstance(value, list) else []
    words = [
        f"{match.get('category')} ({match['score']:.2f})" if _is_number(match.get("score")) else str(match.get("category"))
        for match in matches
    ]
    return ", ".join(words) or "nothing confident"


def _passage_words(value) -> str:
    if not isinstance(value, dict):
        return str(value)
    return f"passage {int(value.get('index', 0)) + 1} (characters {value.get('start')}–{value.get('end')})"


# How each kind of evidence reads (kinds not listed read as their text).
def _number_words(value) -> str:
    return f"{value:.3f}" if _is_number(value) else str(value)


_WORDS = {
    SCORE: _number_words,
    SUPPORT: _number_words,
    THRESHOLD: _number_words,
    FLAG: lambda value: "yes" if value else "no",
    PHOTO: lambda value: f"photo {int(value) + 1}" if _is_number(value) else str(value),
    LISTING: lambda value: f"#{value}",
    PASSAGE: _passage_words,
    CATEGORIES: _categories_words,
}


def evidence_value(kind, value) -> str:
    """An evidence value in words (never a Python repr)."""
    if value is None:
        return "unknown"
    return _WORDS.get(kind, str)(value)


def reason_display(reason: dict, *, threshold=None) -> dict:
    """A reason for people: label, field, sentence and evidence rows (label, value in words, whether
    a score is below the threshold it is judged against)."""
    known = reason_type(reason.get("code"))
    against = reason.get("threshold", threshold)
    against = against if _is_number(against) else threshold
    rows = []
    for evidence in known.evidence if known else ():
        if not evidence.shown or evidence.key not in reason:
            continue
        value = reason[evidence.key]
        below = evidence.kind == SCORE and _is_number(value) and _is_number(against) and value < against
        rows.append({"key": evidence.key, "label": evidence.label, "value": evidence_value(evidence.kind, value), "below": below})
    return {
        "code": reason.get("code", ""), "label": reason_label(reason.get("code")), "field": reason.get("field", ""),
        "field_label": field_label(reason.get("field")), "sentence": reason_sentence(reason), "evidence": rows,
    }


def suggestion(reasons) -> str | None:
    """One seller-facing sentence per problem, built from the reasons; None for a clean match."""
    sentences = []
    for reason in reasons or []:
        if not isinstance(reason, dict):
            continue
        sentence = reason_suggestion(reason, reasons)
        if sentence and sentence not in sentences:
            sentences.append(sentence)
    return " ".join(sentences) or None


def evidence_fields() -> dict[str, str]:
    """Every evidence key of the registered reason types with its kind (the API schema's reason fields)."""
    fields: dict[str, str] = {}
    for known in reason_types():
        for evidence in known.evidence:
            fields.setdefault(evidence.key, evidence.kind)
    return fields


def reasons_table() -> str:
    """The reason table of docs/verdicts.md, from the registry (a test keeps the two equal)."""
    rows = ["| code | label | when | evidence keys |", "| --- | --- | --- | --- |"]
    for known in reason_types():
        keys = ", ".join(f"`{evidence.key}`" for evidence in known.evidence)
        rows.append(f"| `{known.code}` | {known.label} | {known.about} | {keys} |")
    return "\n".join(rows)


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
