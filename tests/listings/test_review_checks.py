"""System checks of the review workbench's LISTINGS settings."""

import pytest

from listings.checks import check_listings_settings
from listings.settings import DEFAULT_STATEMENT_REASON_CODES

# A code of the project's own has statement terms of its own (listings.E012).
COUNTERFEIT_TERMS = {**DEFAULT_STATEMENT_REASON_CODES, "counterfeit": {
    "category": "STATEMENT_CATEGORY_INTELLECTUAL_PROPERTY_INFRINGEMENTS",
    "category_specification": ["KEYWORD_TRADEMARK_INFRINGEMENT"],
    "ground": "Terms 5: no counterfeit goods.", "explanation": "The item imitates a protected brand.",
}}


@pytest.mark.parametrize(("listings", "expected"), [
    ({"REVIEW_REASON_CODES": ["counterfeit", "other"], "STATEMENT_REASON_CODES": COUNTERFEIT_TERMS,
      "REVIEW_SAMPLE_RATE": 0.1, "REVIEW_CLAIM_SECONDS": 60}, []),
    ({"REVIEW_REASON_CODES": []}, ["listings.E005"]),
    ({"REVIEW_REASON_CODES": "other"}, ["listings.E005"]),
    ({"REVIEW_REASON_CODES": ["a", "a"]}, ["listings.E005"]),
    ({"REVIEW_REASON_CODES": ["Bad Code"]}, ["listings.E005"]),
    ({"REVIEW_REASON_CODES": ["undo"]}, ["listings.E005"]),
    ({"REVIEW_REASON_CODES": [f"c{index}" for index in range(10)]}, ["listings.E005"]),
    ({"REVIEW_SAMPLE_RATE": 1.5}, ["listings.E006"]),
    ({"REVIEW_SAMPLE_RATE": "0.1"}, ["listings.E006"]),
    ({"REVIEW_CLAIM_SECONDS": 0}, ["listings.E003"]),
])
def test_review_settings_are_checked(settings, listings, expected):
    settings.LISTINGS = listings
    assert [error.id for error in check_listings_settings()] == expected
