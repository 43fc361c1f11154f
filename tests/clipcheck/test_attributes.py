"""Attribute values named in a text, and the rewrites (clipcheck.attributes)."""

from clipcheck.attributes import attribute_mentions, text_rewrites

ATTRIBUTES = {"colour": ["red", "blue", "green"], "material": ["leather", "canvas"], "pattern": ["polka dot", "striped"]}


def test_a_named_value_is_found_as_a_whole_word_in_any_case():
    mentions = attribute_mentions("Red leather handbag, reduced price", ATTRIBUTES)
    assert [(m.attribute, m.value) for m in mentions] == [("colour", "red"), ("material", "leather")]


def test_two_values_of_one_attribute_say_nothing_checkable_about_it():
    assert attribute_mentions("red and blue stripes", ATTRIBUTES) == []


def test_rewrites_replace_every_occurrence_and_keep_the_rest_of_the_text():
    text = "Red bag. The red one, polka-dot lining."
    colour, pattern = attribute_mentions(text, ATTRIBUTES)
    assert text_rewrites(text, colour, ATTRIBUTES) == [
        ("blue", "Blue bag. The blue one, polka-dot lining."),
        ("green", "Green bag. The green one, polka-dot lining."),
    ]
    assert text_rewrites(text, pattern, ATTRIBUTES) == [("striped", "Red bag. The red one, striped lining.")]
