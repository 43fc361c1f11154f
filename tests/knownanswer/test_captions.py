"""The known-answer domain's captions in its four languages: grammatical, and
spelt with exactly the colour forms and shape nouns of the shared vocabulary."""

import re

import pytest

from knownanswer import domain


@pytest.mark.parametrize(("shape", "colour", "template", "language", "expected"), [
    ("star", "red", 0, "de", "ein roter Stern"),
    ("square", "red", 0, "de", "ein rotes Quadrat"),
    ("star", "red", 1, "de", "ein Foto von einem roten Stern"),
    ("square", "orange", 1, "de", "ein Foto von einem orangefarbenen Quadrat"),
    ("star", "red", 3, "de", "roter Stern"),
    ("cross", "green", 6, "de", "das grüne Kreuz"),
    ("ring", "white", 9, "de", "ein Ring aus weißem Kunststoff"),
    ("circle", "red", 0, "fr", "un cercle rouge"),
    ("star", "blue", 0, "fr", "une étoile bleue"),
    ("cross", "green", 9, "fr", "photo d'une croix verte"),
    ("star", "white", 6, "fr", "l'étoile blanche"),
    ("ring", "black", 6, "fr", "l'anneau noir"),
    ("star", "blue", 8, "fr", "une petite étoile bleue"),
    ("circle", "red", 0, "es", "un círculo rojo"),
    ("star", "blue", 0, "es", "una estrella azul"),
    ("cross", "green", 9, "es", "foto de una cruz verde"),
    ("star", "yellow", 6, "es", "la estrella amarilla"),
    ("triangle", "purple", 8, "es", "un triángulo morado pequeño"),
])
def test_captions_agree_in_gender_case_and_number(shape, colour, template, language, expected):
    assert domain.caption(shape, colour, template, language) == expected


def test_every_language_has_as_many_captions_of_each_kind_as_english():
    english = domain.all_captions()
    for language in domain.LANGUAGES:
        captions = domain.all_captions(language)
        assert len(captions) == len(english) == len(set(english))
        assert len(set(captions)) == len(captions), language  # no two templates say it alike


def test_captions_use_only_the_shared_colour_forms_and_shape_nouns():
    for language in domain.LANGUAGES[1:]:
        words = {form.lower() for forms in domain.COLOUR_WORDS[language].values() for form in forms}
        nouns = {noun.lower() for noun, _ in domain.SHAPE_WORDS[language].values()}
        for shape in domain.SHAPES:
            for colour in domain.COLOURS:
                for template in range(len(domain.FULL_TEMPLATES)):
                    text = domain.caption(shape, colour, template, language).lower()
                    tokens = set(re.findall(r"\w+", text))
                    colour_forms = set(domain.COLOUR_WORDS[language][colour])
                    assert tokens & colour_forms, text
                    assert not tokens & (words - colour_forms), text  # no other colour's form
                    assert domain.SHAPE_WORDS[language][shape][0].lower() in tokens, text
                    assert len(tokens & nouns) == 1, text


def test_the_prompts_are_the_first_single_attribute_captions():
    assert domain.shape_prompt("circle") == "a photo of a circle"
    assert domain.colour_prompt("orange") == "a photo of an orange object"
    assert domain.shape_prompt("star", "de") == "ein Foto von einem Stern"
    assert domain.colour_prompt("red", "fr") == "une photo d'un objet rouge"
    assert domain.shape_prompt("cross", "es") == "una foto de una cruz"
