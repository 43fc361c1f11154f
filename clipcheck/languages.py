"""The language a product text is written in: its vocabulary and how a request names it.

A text is checked with its language's vocabulary (``ATTRIBUTES`` for
English, ``ATTRIBUTES_BY_LANGUAGE`` for the others) and its reasons and
suggestions are written in that language (Django's translations,
clipcheck/locale). A request names the language in a ``language`` field;
without one its ``Accept-Language`` header chooses among the supported
languages, and English is the default (docs/api.md#languages).
"""

from __future__ import annotations

from django.utils.translation import trans_real

from clipcheck.attributes import Vocabulary, value_forms, value_name
from clipcheck.default_attributes import DEFAULT_LANGUAGE
from clipcheck.settings import clip_settings


def supported_languages() -> list[str]:
    """English, then each language ``ATTRIBUTES_BY_LANGUAGE`` has a vocabulary for."""
    return [DEFAULT_LANGUAGE, *(language for language in clip_settings.ATTRIBUTES_BY_LANGUAGE
                                if language != DEFAULT_LANGUAGE)]


def language_vocabulary(language: str) -> Vocabulary:
    """The attributes a text in ``language`` is checked for (English's for an unknown language)."""
    if language == DEFAULT_LANGUAGE:
        return clip_settings.ATTRIBUTES
    return clip_settings.ATTRIBUTES_BY_LANGUAGE.get(language, clip_settings.ATTRIBUTES)


def language_supported(code: str) -> str | None:
    """The supported language ``code`` names ("de", "DE", "de-AT" → "de"), or None."""
    code = str(code or "").strip().lower().replace("_", "-")
    supported = supported_languages()
    for candidate in (code, code.partition("-")[0]):
        if candidate in supported:
            return candidate
    return None


def language_from_header(header: str) -> str | None:
    """The first supported language of an ``Accept-Language`` header, by its weights (Django's parser)."""
    for code, _ in trans_real.parse_accept_lang_header(header or ""):
        if code == "*":
            return DEFAULT_LANGUAGE
        language = language_supported(code)
        if language is not None:
            return language
    return None


def request_language(request, language: str | None = None) -> str:
    """A request's text language: ``language`` (already validated), else its Accept-Language, else English."""
    if language:
        return language
    header = request.META.get("HTTP_ACCEPT_LANGUAGE", "") if request is not None else ""
    return language_from_header(header) or DEFAULT_LANGUAGE


def value_forms_named(attribute: str, name: str) -> tuple[str, ...]:
    """Every form of the value called ``name`` of ``attribute`` in any language's vocabulary (what a
    reason's ``text_says`` may have been written as); ``(name,)`` where no vocabulary has it."""
    forms: dict[str, None] = {name: None}
    for language in supported_languages():
        for value in language_vocabulary(language).get(attribute, ()):
            if value_name(value) == name:
                forms.update(dict.fromkeys(value_forms(value)))
    return tuple(forms)
