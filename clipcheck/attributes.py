"""Attribute values a text names, and the same text with another value.

An attribute conflict (``clipcheck.verdicts``) is found by rewriting the
seller's own text: "red leather handbag" becomes "blue leather handbag",
"green leather handbag", ... and every rewrite is scored against the photo.
Because the rewrites keep everything else the seller wrote, this works with
any CLIP checkpoint and any domain: only the value changes.
"""

import functools
import re
from dataclasses import dataclass

from clipcheck.settings import clip_settings


def _configured():
    return clip_settings.ATTRIBUTES


@dataclass(frozen=True)
class Mention:
    """One attribute the text names with exactly one of its values."""

    attribute: str
    value: str
    spans: tuple  # (start, end) of each occurrence in the text


@functools.lru_cache(maxsize=4096)
def value_pattern(value):
    # Whole words only ("red" is not in "reduced"); any run of spaces or a
    # hyphen between the words of a value ("polka-dot").
    words = [re.escape(word) for word in value.split()]
    return re.compile(r"(?<![\w-])" + r"[\s-]+".join(words) + r"(?![\w-])", re.IGNORECASE)


def values_named(text, values):
    """The values of ``values`` that ``text`` names as whole words."""
    return {value for value in values if value_pattern(value).search(text)}


def attribute_mentions(text, attributes=None):
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
            spans = tuple(match.span() for match in value_pattern(value).finditer(text))
            if spans:
                found[value] = spans
        if len(found) == 1:
            (value, spans), = found.items()
            mentions.append(Mention(attribute=attribute, value=value, spans=spans))
    return mentions


def text_rewrites(text, mention, attributes=None):
    """``[(other value, text with every occurrence of the value replaced)]``."""
    attributes = attributes if attributes is not None else _configured()
    rewrites = []
    for other in attributes[mention.attribute]:
        if other == mention.value:
            continue
        parts, last = [], 0
        for start, end in mention.spans:
            original = text[start:end]
            parts += [text[last:start], other.capitalize() if original[:1].isupper() else other]
            last = end
        rewrites.append((other, "".join(parts) + text[last:]))
    return rewrites
