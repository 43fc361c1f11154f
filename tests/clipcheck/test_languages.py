"""A text's language (clipcheck.languages): the supported ones, their vocabularies, Accept-Language."""

import pytest

from clipcheck.default_attributes import DEFAULT_ATTRIBUTES, DEFAULT_ATTRIBUTES_BY_LANGUAGE
from clipcheck.languages import language_from_header, language_supported, language_vocabulary, supported_languages
from tests.support.clip_settings import set_clip_settings


def test_english_and_every_configured_vocabulary_are_supported(settings):
    assert supported_languages() == ["en", "de", "fr", "es"]
    assert language_vocabulary("en") == DEFAULT_ATTRIBUTES
    assert language_vocabulary("de") == DEFAULT_ATTRIBUTES_BY_LANGUAGE["de"]

    italian = {"colore": [["rosso", "rossa", "rossi", "rosse"], ["blu", "blu", "blu", "blu"]]}
    set_clip_settings(settings, ATTRIBUTES_BY_LANGUAGE={"it": italian})
    assert supported_languages() == ["en", "it"]
    assert language_vocabulary("it") == italian
    assert language_supported("de") is None


@pytest.mark.parametrize(("code", "language"), [
    ("de", "de"), ("DE", "de"), ("de-AT", "de"), ("de_CH", "de"), ("es-419", "es"), ("it", None), ("", None),
])
def test_a_code_names_a_supported_language_or_none(code, language):
    assert language_supported(code) == language


@pytest.mark.parametrize(("header", "language"), [
    ("fr-CA,fr;q=0.9,en;q=0.8", "fr"),
    ("en;q=0.1, de;q=0.9", "de"),  # by weight, not by position
    ("it, pt-BR, es;q=0.2", "es"),
    ("it, pt", None),
    ("*", "en"),
    ("", None),
    ("garbage;;;q=x", None),
])
def test_accept_language_chooses_the_first_supported_language_by_weight(header, language):
    assert language_from_header(header) == language
