"""The registry of reason types (clipcheck.reasons): words for every code, the seller's suggestion."""

import re

import pytest
from django.apps import apps

from clipcheck import reasons, verdicts
from clipcheck.api.serializers import ReasonSerializer
from tests.support.clip_settings import set_clip_settings

WORDS = re.compile(r"^[A-Z][a-z]+( [a-z,]+)*$")


def test_every_registered_reason_has_a_label_in_words_and_both_apps_register_theirs():
    assert apps.ready
    codes = reasons.reason_codes()
    assert {"low_similarity", "passage_mismatch", "attribute_conflict", "object_conflict",
            "category_conflict", "photos_differ", "photo_reused"} <= set(codes)
    for reason_type in reasons.reason_types():
        assert WORDS.match(reason_type.label), reason_type.label
        assert reason_type.about.endswith(".") and "_" not in reason_type.label


def test_the_api_schema_offers_exactly_the_registered_codes():
    assert list(ReasonSerializer().fields["code"].choices) == reasons.reason_codes()


@pytest.mark.parametrize(("kind", "value", "words"), [
    (reasons.CATEGORIES, [{"category": "star", "score": 0.5479}], "star (0.55)"),
    (reasons.FLAG, False, "no"),
    (reasons.FLAG, None, "unknown"),
    (reasons.PHOTO, 1, "photo 2"),
    (reasons.PASSAGE, {"index": 0, "start": 3, "end": 9}, "passage 1 (characters 3–9)"),
    (reasons.SCORE, 0.71234, "0.712"),
    (reasons.LISTING, 12, "#12"),
])
def test_evidence_reads_as_words_never_as_a_python_repr(kind, value, words):
    assert reasons.evidence_value(kind, value) == words


def test_a_reason_for_people_hides_hashes_and_judges_only_scores_against_the_threshold():
    reused = {"code": "photo_reused", "field": "photos", "message": "m", "listing_id": 4, "similarity": 0.2,
              "seller_differs": True, "titles_conflict": None, "sha256": "96ac" * 16, "layout_similarity": 0.9}
    shown = reasons.reason_display(reused, threshold=0.7)
    assert shown["label"] == "Photo already used by another listing" and shown["field_label"] == "Photos"
    assert [row["label"] for row in shown["evidence"]] == [
        "Other listing", "Similarity", "Another seller", "Titles say different things"]
    assert not any(row["below"] for row in shown["evidence"])  # a supporting figure is not a failing score
    assert shown["sentence"] == "Listing #4 of another seller shows a near-identical photo (similarity 0.200)."
    failing = reasons.reason_display(
        {"code": "low_similarity", "field": "title", "message": "m", "score": 0.6, "threshold": 0.7}, threshold=0.5)
    assert [row["below"] for row in failing["evidence"]] == [True, False]
    assert failing["sentence"] == "The title does not match the photo: it scores 0.600, below the threshold 0.700."


def test_an_old_record_without_its_evidence_still_reads_as_its_message_and_an_unknown_code_as_words():
    assert reasons.reason_sentence({"code": "low_similarity", "message": "Stored words."}) == "Stored words."
    assert reasons.reason_label("wrong_photo") == "Wrong photo"
    assert reasons.reason_display({"code": "retired_code", "field": "text"})["label"] == "Retired code"


def test_what_the_photo_looks_like_leaves_out_what_the_text_names(settings):
    matches = [{"category": "circle", "score": 0.9}, {"category": "star", "score": 0.7}, {"category": "ring", "score": 0.4}]
    assert verdicts.looks_like(matches, top_k=2, text="Blue circle pendant, 5 cm") == [{"category": "star", "score": 0.7}]
    assert verdicts.looks_like(matches, top_k=2, text="a red star and a circle") == []
    assert verdicts.looks_like(matches, top_k=2, text="") == matches[:2]


def test_the_suggestion_never_offers_what_the_text_says_and_otherwise_says_what_failed():
    mismatch = {"code": "low_similarity", "field": "title", "message": "m", "score": 0.6, "threshold": 0.7,
                "photo_looks_like": []}
    assert verdicts.suggestion([mismatch]) == "The photo does not match your title."
    conflict = {"code": "object_conflict", "field": "title", "message": "m", "text_says": "circle", "photo_shows": "star",
                "text_score": 0.6, "photo_shows_score": 0.75, "threshold": 0.7}
    assert verdicts.suggestion([mismatch, conflict]) == "The photo shows star; your title says circle."


def test_the_category_vocabulary_is_checked_like_an_attribute_when_categories_are_configured(settings):
    set_clip_settings(settings, CATEGORIES=["circle", "star", "running shoes"])
    assert verdicts.text_vocabulary()[verdicts.OBJECT_ATTRIBUTE] == ["circle", "star", "running shoes"]
    set_clip_settings(settings, CATEGORIES=[])
    assert verdicts.OBJECT_ATTRIBUTE not in verdicts.text_vocabulary()


def test_the_api_reason_declares_every_evidence_key_so_nothing_is_dropped_in_rendering():
    reused = {"code": "photo_reused", "field": "photos", "message": "m", "listing_id": 4, "similarity": 0.99,
              "layout_similarity": 0.9, "seller_differs": None, "titles_conflict": False, "sha256": "ab" * 32,
              "photo": 1}
    assert ReasonSerializer(reused).data == reused
    looks = {"code": "low_similarity", "field": "text", "message": "m", "score": 0.1, "threshold": 0.2,
             "photo_looks_like": [{"category": "star", "score": 0.7}]}
    assert ReasonSerializer(looks).data == looks
