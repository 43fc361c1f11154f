"""System checks of the statement-of-reasons settings (listings.E012–E018): what the Transparency Database
would refuse is reported when the service starts, not when the daily submission runs."""

import copy

import pytest

from listings.checks import check_listings_settings
from listings.settings import DEFAULT_STATEMENT_REASON_CODES


def error_ids(settings, listings):
    settings.LISTINGS = listings
    return [error.id for error in check_listings_settings()]


def terms(code="other", **changes):
    table = copy.deepcopy(DEFAULT_STATEMENT_REASON_CODES)
    table[code].update(changes)
    return table


def test_the_defaults_and_complete_settings_pass(settings):
    assert error_ids(settings, {}) == []
    assert error_ids(settings, {
        "STATEMENT_DECISION_VISIBILITY": ["DECISION_VISIBILITY_CONTENT_REMOVED", "DECISION_VISIBILITY_CONTENT_DEMOTED"],
        "STATEMENT_TERMS_URL": "https://shop.example/terms", "STATEMENT_TERRITORIAL_SCOPE": ["DE", "AT", "NO"],
        "STATEMENT_CONTENT_LANGUAGE": "DE", "STATEMENT_PUID_NAMESPACE": "shop_eu_1",
        "STATEMENT_SUBMIT_DELAY_SECONDS": 0,
        "REVIEW_REASON_CODES": ["counterfeit"], "STATEMENT_REASON_CODES": {"counterfeit": {
            "category": "STATEMENT_CATEGORY_INTELLECTUAL_PROPERTY_INFRINGEMENTS",
            "category_specification": ["KEYWORD_TRADEMARK_INFRINGEMENT"],
            "ground": "Terms 5: no counterfeit goods.", "explanation": "The item imitates a protected brand.",
        }},
    }) == []


@pytest.mark.parametrize(("listings", "expected"), [
    ({"STATEMENT_REASON_CODES": ["other"]}, "listings.E012"),
    ({"REVIEW_REASON_CODES": ["other", "counterfeit"]}, "listings.E012"),  # a code without terms
    ({"STATEMENT_REASON_CODES": terms(category="Consumer information infringements")}, "listings.E012"),
    ({"STATEMENT_REASON_CODES": terms(category_specification=["KEYWORD_SOMETHING"])}, "listings.E012"),
    ({"STATEMENT_REASON_CODES": terms(category_specification="KEYWORD_OTHER")}, "listings.E012"),
    ({"STATEMENT_REASON_CODES": terms(ground="")}, "listings.E012"),
    ({"STATEMENT_REASON_CODES": terms(ground="x" * 501)}, "listings.E012"),
    ({"STATEMENT_REASON_CODES": terms(explanation="x" * 2001)}, "listings.E012"),
    ({"STATEMENT_REASON_CODES": terms(illegal=True)}, "listings.E012"),
    ({"STATEMENT_DECISION_VISIBILITY": []}, "listings.E013"),
    ({"STATEMENT_DECISION_VISIBILITY": "DECISION_VISIBILITY_CONTENT_DISABLED"}, "listings.E013"),
    ({"STATEMENT_DECISION_VISIBILITY": ["DECISION_VISIBILITY_OTHER"]}, "listings.E013"),
    ({"STATEMENT_TERMS_URL": "our terms page"}, "listings.E014"),
    ({"STATEMENT_TERMS_URL": "https://shop.example/" + "t" * 500}, "listings.E014"),
    ({"STATEMENT_TERRITORIAL_SCOPE": ["DE", "CH"]}, "listings.E015"),
    ({"STATEMENT_TERRITORIAL_SCOPE": []}, "listings.E015"),
    ({"STATEMENT_CONTENT_LANGUAGE": "en"}, "listings.E016"),
    ({"STATEMENT_PUID_NAMESPACE": "shop-eu"}, "listings.E017"),
    ({"STATEMENT_PUID_NAMESPACE": ""}, "listings.E017"),
    ({"STATEMENT_SUBMIT_DELAY_SECONDS": -1}, "listings.E018"),
])
def test_mistakes_are_reported(settings, listings, expected):
    assert error_ids(settings, listings) == [expected]


def test_the_message_names_the_code_and_what_is_wrong(settings):
    settings.LISTINGS = {"STATEMENT_REASON_CODES": terms("prohibited", category="STATEMENT_CATEGORY_PRODUCTS")}
    message, = [error.msg for error in check_listings_settings()]
    assert message == ("LISTINGS STATEMENT_REASON_CODES['prohibited']: category 'STATEMENT_CATEGORY_PRODUCTS' is not "
                       "one of the database's STATEMENT_CATEGORY_* values.")
