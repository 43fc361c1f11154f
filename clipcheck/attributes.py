"""Attribute values a text names, and the same text with another value.

An attribute conflict (``clipcheck.verdicts``) is found by rewriting the
seller's own text: "red leather handbag" becomes "blue leather handbag",
"green leather handbag", ... and every rewrite is scored against the photo.
Because the rewrites keep everything else the seller wrote, this works with
any CLIP checkpoint and any domain: only the value changes.

A value is a plain string ("red") or, in a language that inflects, the list
of its forms whose first form is the value's name (``["rot", "rote",
"roter", "rotes", "roten", "rotem"]``). A rewrite puts the other value's
form at the same index where the text had a form, so "ein roter Stern"
becomes "ein blauer Stern", not "ein blau Stern".
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from clipcheck.settings import clip_settings

Value = str | Sequence[str]
Vocabulary = Mapping[str, Sequence[Value]]


def _configured() -> Vocabulary:
    return clip_settings.ATTRIBUTES


def value_forms(value: Value) -> tuple[str, ...]:
    """A value's forms: a plain string is its only form."""
    return (value,) if isinstance(value, str) else tuple(value)


def value_name(value: Value) -> str:
    """A value's name: its first form."""
    return value_forms(value)[0]


@dataclass(frozen=True)
class Mention:
    """One attribute the text names with exactly one of its values."""

    attribute: str
    value: str  # the value's name (its first form)
    spans: tuple  # (start, end) of each occurrence in the text
    # Per occurrence, the indexes of the value's forms it is written as: more
    # than one where a form repeats ("verde" is es masculine and feminine).
    form_indexes: tuple = ()
    forms: tuple = ()  # the value's forms

    @property
    def form(self) -> str:
        """The form of the first occurrence, as the vocabulary spells it."""
        return self.forms[self.form_indexes[0][0]] if self.forms else self.value


def _letter_pattern(character: str) -> str:
    # German writes ß as SS in capitals ("WEISSER"); a precomposed letter ("é")
    # also matches its decomposed spelling ("e" + U+0301).
    if character == "ß":
        return "(?:ß|ss)"
    decomposed = unicodedata.normalize("NFD", character)
    if decomposed == character:
        return re.escape(character)
    return f"(?:{re.escape(character)}|{re.escape(decomposed)})"


def _form_pattern(form: str) -> str:
    # Any run of spaces or a hyphen between the words of a value ("polka-dot").
    words = ["".join(_letter_pattern(character) for character in unicodedata.normalize("NFC", word))
             for word in form.split()]
    return r"[\s-]+".join(words)


@functools.lru_cache(maxsize=4096)
def value_pattern(value: Value) -> re.Pattern[str]:
    """Whole words only ("red" is not in "reduced", "rot" not in "roter"), any case, any form of the value."""
    # Longest first: an alternation takes the first form that matches.
    alternatives = sorted(dict.fromkeys(_form_pattern(form) for form in value_forms(value)), key=len, reverse=True)
    return re.compile(r"(?<![\w-])(?:" + "|".join(alternatives) + r")(?![\w-])", re.IGNORECASE)


def _comparable(text: str) -> str:
    return " ".join(unicodedata.normalize("NFC", text).casefold().replace("-", " ").split())


def _form_indexes(written: str, forms: tuple[str, ...]) -> tuple[int, ...]:
    """The indexes of the forms ``written`` spells (all of them where a form repeats)."""
    written = _comparable(written)
    return tuple(index for index, form in enumerate(forms) if _comparable(form) == written) or (0,)


def values_named(text: str, values: Sequence[Value]) -> set[str]:
    """The names of the values of ``values`` that ``text`` names as whole words."""
    return {value_name(value) for value in values if value_pattern(_hashable(value)).search(text)}


def _hashable(value: Value) -> Value:
    return value if isinstance(value, str) else tuple(value)


def attribute_mentions(text: str, attributes: Vocabulary | None = None) -> list[Mention]:
    """The attributes ``text`` names, each with the one value it names.

    An attribute whose text names two or more of its values ("red and
    blue stripes") says nothing checkable about that attribute and is left
    out.
    """
    attributes = attributes if attributes is not None else _configured()
    mentions = []
    for attribute, values in attributes.items():
        found = {}
        for value in values:
            forms = value_forms(value)
            matches = list(value_pattern(_hashable(value)).finditer(text))
            if matches:
                found[forms[0]] = (
                    tuple(match.span() for match in matches),
                    tuple(_form_indexes(match.group(), forms) for match in matches),
                    forms,
                )
        if len(found) == 1:
            (value, (spans, indexes, forms)), = found.items()
            mentions.append(Mention(attribute=attribute, value=value, spans=spans, form_indexes=indexes, forms=forms))
    return mentions


def _written_like(form: str, original: str) -> str:
    # A capitalised word stays capitalised ("Red bag" → "Blue bag").
    return form[:1].upper() + form[1:] if original[:1].isupper() else form


def _readings(mention: Mention) -> list[tuple[int, ...]]:
    """The form index of each occurrence, once per way of reading an ambiguous form.

    Reading ``k`` takes index ``k`` wherever an occurrence may be it, else the
    occurrence's first: "verde" (masculine or feminine) gives two readings.
    """
    choices = mention.form_indexes or tuple((0,) for _ in mention.spans)
    candidates = sorted({index for indexes in choices for index in indexes})
    readings = [tuple(k if k in indexes else indexes[0] for indexes in choices) for k in candidates]
    return list(dict.fromkeys(readings))


@dataclass(frozen=True)
class TextRewrite:
    """The text with the mentioned value replaced by ``value`` (a name), written as ``form``."""

    value: str
    text: str
    form: str  # the other value's form put in (of the first occurrence)
    written: str  # the mentioned value's form it replaced


def text_rewrite_forms(text: str, mention: Mention, attributes: Vocabulary | None = None) -> list[TextRewrite]:
    """Each other value of the attribute in the text, every occurrence replaced by its form at the same index.

    A value with fewer forms gives its name where it has no form at that index.
    """
    attributes = attributes if attributes is not None else _configured()
    rewrites = []
    for other in attributes[mention.attribute]:
        other_forms = value_forms(other)
        if other_forms[0] == mention.value:
            continue
        texts = {}
        for reading in _readings(mention):
            parts, last = [], 0
            for (start, end), index in zip(mention.spans, reading, strict=True):
                form = other_forms[index] if index < len(other_forms) else other_forms[0]
                parts += [text[last:start], _written_like(form, text[start:end])]
                last = end
            rewritten = "".join(parts) + text[last:]
            first = reading[0]
            written = mention.forms[first] if first < len(mention.forms) else mention.value
            texts.setdefault(rewritten, TextRewrite(
                value=other_forms[0], text=rewritten,
                form=other_forms[first] if first < len(other_forms) else other_forms[0], written=written,
            ))
        rewrites += texts.values()
    return rewrites


def vocabulary_forms(attributes: Vocabulary) -> set[str]:
    """Every form of every value of a vocabulary."""
    return {form for values in attributes.values() for value in values for form in value_forms(value)}
