"""Attribute values named in a text, and the rewrites (clipcheck.attributes)."""

import unicodedata

import pytest

from clipcheck.attributes import attribute_mentions, text_rewrite_forms, value_pattern, values_named
from clipcheck.default_attributes import DEFAULT_ATTRIBUTES, DEFAULT_ATTRIBUTES_BY_LANGUAGE, LANGUAGES
from knownanswer import domain

ATTRIBUTES = {"colour": ["red", "blue", "green"], "material": ["leather", "canvas"], "pattern": ["polka dot", "striped"]}


def test_a_named_value_is_found_as_a_whole_word_in_any_case():
    mentions = attribute_mentions("Red leather handbag, reduced price", ATTRIBUTES)
    assert [(m.attribute, m.value) for m in mentions] == [("colour", "red"), ("material", "leather")]


def test_two_values_of_one_attribute_say_nothing_checkable_about_it():
    assert attribute_mentions("red and blue stripes", ATTRIBUTES) == []


def rewrites(text, mention, vocabulary):
    """``[(other value's name, rewritten text)]``."""
    return [(rewrite.value, rewrite.text) for rewrite in text_rewrite_forms(text, mention, vocabulary)]


def test_rewrites_replace_every_occurrence_and_keep_the_rest_of_the_text():
    text = "Red bag. The red one, polka-dot lining."
    colour, pattern = attribute_mentions(text, ATTRIBUTES)
    assert rewrites(text, colour, ATTRIBUTES) == [
        ("blue", "Blue bag. The blue one, polka-dot lining."),
        ("green", "Green bag. The green one, polka-dot lining."),
    ]
    assert rewrites(text, pattern, ATTRIBUTES) == [("striped", "Red bag. The red one, striped lining.")]


# Values with inflected forms (first form = the value's name), as the other languages' vocabularies write them.

GERMAN = DEFAULT_ATTRIBUTES_BY_LANGUAGE["de"]
FRENCH = DEFAULT_ATTRIBUTES_BY_LANGUAGE["fr"]
SPANISH = DEFAULT_ATTRIBUTES_BY_LANGUAGE["es"]


def only_rewrite(text, vocabulary, to):
    mention, = [m for m in attribute_mentions(text, vocabulary) if m.attribute == "colour"]
    return mention, [rewritten for value, rewritten in rewrites(text, mention, vocabulary) if value == to]


@pytest.mark.parametrize(("text", "vocabulary", "says", "to", "expected"), [
    ("ein roter Stern", GERMAN, "rot", "blau", ["ein blauer Stern"]),
    ("ein Foto von einem roten Kreis", GERMAN, "rot", "weiß", ["ein Foto von einem weißen Kreis"]),
    ("das weiße Quadrat", GERMAN, "weiß", "orangefarben", ["das orangefarbene Quadrat"]),
    ("une étoile bleue", FRENCH, "bleu", "rouge", ["une étoile rouge"]),
    ("des cercles blancs", FRENCH, "blanc", "vert", ["des cercles verts"]),
    ("une croix blanche", FRENCH, "blanc", "violet", ["une croix violette"]),
    ("una estrella roja", SPANISH, "rojo", "azul", ["una estrella azul"]),
    ("dos cuadrados amarillos", SPANISH, "amarillo", "negro", ["dos cuadrados negros"]),
])
def test_a_rewrite_keeps_the_inflection_of_the_form_it_replaces(text, vocabulary, says, to, expected):
    mention, rewritten = only_rewrite(text, vocabulary, to)
    assert mention.value == says
    assert rewritten == expected


def test_a_mention_reports_the_value_name_and_the_form_written():
    mention, = attribute_mentions("Ein ROTER Stern und eine rote Kugel", {"colour": GERMAN["colour"]})
    assert mention.value == "rot" and mention.form == "roter"
    assert [mention.forms[indexes[0]] for indexes in mention.form_indexes] == ["roter", "rote"]
    # Each occurrence gets the other value's form at its own index; capitals stay capitals.
    _, (rewritten,) = only_rewrite("Ein ROTER Stern und eine rote Kugel", {"colour": GERMAN["colour"]}, "blau")
    assert rewritten == "Ein Blauer Stern und eine blaue Kugel"


def test_a_form_two_indexes_share_is_rewritten_both_ways():
    """Spanish "verde" is masculine and feminine: both readings are offered, the likelier is chosen by the model."""
    mention, rewritten = only_rewrite("una estrella verde", SPANISH, "rojo")
    assert mention.form_indexes == ((0, 1),)
    assert sorted(rewritten) == ["una estrella roja", "una estrella rojo"]
    forms = {rewrite.form for rewrite in text_rewrite_forms("una estrella verde", mention, SPANISH) if rewrite.value == "rojo"}
    assert forms == {"rojo", "roja"}


@pytest.mark.parametrize(("text", "vocabulary", "value"), [
    ("Ein WEISSER Stern", GERMAN, "weiß"),  # ß is SS in capitals
    ("ein grünes Dreieck", GERMAN, "grün"),
    (unicodedata.normalize("NFD", "une étoile dorée"), FRENCH, "doré"),  # decomposed accents
    ("un círculo marrón", SPANISH, "marrón"),
])
def test_matching_is_unicode_aware(text, vocabulary, value):
    assert value in {mention.value for mention in attribute_mentions(text, {"colour": vocabulary["colour"]})}


@pytest.mark.parametrize(("text", "vocabulary"), [
    ("ein Rotkehlchen", GERMAN),  # rot inside a word
    ("ein rotbrauner Stern", GERMAN),
    ("il est rougeaud", FRENCH),
    ("una azulejo", SPANISH),
])
def test_a_form_inside_another_word_is_not_a_mention(text, vocabulary):
    assert attribute_mentions(text, {"colour": vocabulary["colour"]}) == []


def test_two_values_in_one_language_say_nothing_checkable():
    assert attribute_mentions("ein roter und ein blauer Stern", {"colour": GERMAN["colour"]}) == []


def test_english_plain_values_behave_as_before():
    mention, = attribute_mentions("Polka-dot dress", {"pattern": DEFAULT_ATTRIBUTES["pattern"]})
    assert (mention.value, mention.form, mention.spans) == ("polka dot", "polka dot", ((0, 9),))
    assert values_named("a red star", ["red", ["blau", "blauer"]]) == {"red"}
    assert values_named("ein blauer Stern", ["red", ["blau", "blauer"]]) == {"blau"}
    assert value_pattern("red").search("reduced") is None


@pytest.mark.parametrize("language", [language for language in LANGUAGES if language != "en"])
def test_the_default_vocabularies_spell_the_known_answer_colours_as_its_captions_do(language):
    """The service's default colours hold the domain's forms exactly, in the same order."""
    colours = {tuple([value] if isinstance(value, str) else value) for value in DEFAULT_ATTRIBUTES_BY_LANGUAGE[language]["colour"]}
    for forms in domain.COLOUR_WORDS[language].values():
        assert tuple(forms) in colours


@pytest.mark.parametrize("language", [language for language in LANGUAGES if language != "en"])
def test_every_known_answer_caption_names_its_colour_in_its_language(language):
    vocabulary = {"colour": DEFAULT_ATTRIBUTES_BY_LANGUAGE[language]["colour"]}
    for colour, forms in domain.COLOUR_WORDS[language].items():
        for index in range(len(domain.FULL_TEMPLATES)):
            text = domain.caption("star", colour, index, language=language)
            mention, = attribute_mentions(text, vocabulary)
            assert mention.value == forms[0], text
