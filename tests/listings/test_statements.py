"""Statements of reasons: one per restriction, valid by the Transparency Database's rules, built from
the decision record, in words, without personal data."""

import json
import re
from datetime import timedelta

import pytest
from django.utils import timezone

from clipcheck.reasons import reason_codes
from listings import review
from listings.models import Listing
from listings.settings import DEFAULT_STATEMENT_REASON_CODES
from listings.statement_rules import statement_errors
from listings.statements import (
    decision_facts,
    decision_puid,
    decision_statement,
    personal_data_scrub,
    restriction_decisions,
)
from tests.support.statements import (
    EVERY_REASON,
    PLANTED,
    listing_to_review,
    people,
    reject,
    restrictions_seed,
)

Status = Listing.Status
REVIEW_CODES = list(DEFAULT_STATEMENT_REASON_CODES)


@pytest.fixture
def seller_and_moderator(db):
    return people()


def planted_in(statement):
    text = json.dumps(statement, ensure_ascii=False).lower()
    return [item for item in PLANTED if item.lower() in text]


def test_every_restriction_of_a_seeded_catalogue_is_a_valid_statement_without_personal_data(seller_and_moderator):
    seller, moderator = seller_and_moderator
    decisions = restrictions_seed(seller=seller, moderator=moderator, count=48, reason_codes=REVIEW_CODES + [""])
    statements = [decision_statement(decision) for decision in restriction_decisions()]
    valid = [statement for statement in statements if not statement_errors(statement)]
    leaking = [statement["puid"] for statement in statements if planted_in(statement)]
    print(f"\nstatements: {len(statements)} for {len(decisions)} restrictions; valid by the database's rules: "
          f"{len(valid)}/{len(statements)} ({100 * len(valid) / len(statements):.1f} %); "
          f"with personal data: {len(leaking)}")
    assert len(statements) == len(decisions) == 48
    assert [statement_errors(statement) for statement in statements] == [{}] * 48
    assert leaking == []
    assert len({statement["puid"] for statement in statements}) == 48


def test_the_seeded_reasons_cover_every_registered_reason_type():
    assert {reason["code"] for reason in EVERY_REASON} == set(reason_codes())


def test_a_machine_flagged_rejection_says_what_the_check_found_in_words(seller_and_moderator):
    seller, moderator = seller_and_moderator
    decision = reject(listing_to_review(seller=seller, reasons=EVERY_REASON), moderator, reason_code="wrong_photo")
    statement = decision_statement(decision)
    facts = statement["decision_facts"]
    print("\n" + facts)
    assert statement["automated_detection"] == "Yes"
    assert statement["automated_decision"] == "AUTOMATED_DECISION_PARTIALLY"
    assert facts.startswith("A moderator reviewed this listing and rejected it (disabling access to content), "
                            "for this reason: Wrong photo.")
    assert "Wrong colour, material or pattern (Title): The title says blue, but the photo looks red (colour)." in facts
    assert "The photo looks like: handbag (0.81)" in facts  # the marketplace's own category words are quoted
    assert "The photo does not look like the category given" in facts  # the seller's typed category is not
    assert "The description says a word of the text, but the photo looks red" in facts
    assert "Photo already used by another listing (Photos)." in facts  # which listing, whose: never
    # No codes, reprs or hashes: words only.
    for code in reason_codes():
        assert code not in facts
    for machine_text in ("{", "}", "[", "]", "ab" * 32, "4242", "_"):
        assert machine_text not in facts, machine_text
    assert not re.search(r"\b(None|True|False)\b(?! of)", facts)
    assert not re.search(r"'[^' ]*'", facts)  # no quoted Python values


def test_automated_detection_and_decision_come_from_the_record(seller_and_moderator):
    seller, moderator = seller_and_moderator
    flagged = reject(listing_to_review(seller=seller, reasons=EVERY_REASON[:1]), moderator)
    sampled = reject(listing_to_review(seller=seller, status=Status.APPROVED, sampled=True), moderator)
    unflagged = reject(listing_to_review(seller=seller), moderator)
    assert sampled.sampled and not flagged.sampled
    automation = {
        name: (decision_statement(decision)["automated_detection"], decision_statement(decision)["automated_decision"])
        for name, decision in [("flagged", flagged), ("sampled", sampled), ("unflagged", unflagged)]
    }
    assert automation == {
        "flagged": ("Yes", "AUTOMATED_DECISION_PARTIALLY"),
        "sampled": ("No", "AUTOMATED_DECISION_NOT_AUTOMATED"),
        "unflagged": ("No", "AUTOMATED_DECISION_NOT_AUTOMATED"),
    }
    assert "random sample" in decision_statement(sampled)["decision_facts"]


def test_the_fields_come_from_the_record_and_the_settings(seller_and_moderator, settings):
    seller, moderator = seller_and_moderator
    listing = listing_to_review(seller=seller, reasons=EVERY_REASON[:1])
    Listing.objects.filter(pk=listing.pk).update(created_at=timezone.now() - timedelta(days=400))
    listing.refresh_from_db()
    decision = reject(listing, moderator, reason_code="prohibited")
    statement = decision_statement(decision)
    assert statement["decision_visibility"] == ["DECISION_VISIBILITY_CONTENT_DISABLED"]
    assert statement["decision_ground"] == "DECISION_GROUND_INCOMPATIBLE_CONTENT"
    assert statement["incompatible_content_ground"] == DEFAULT_STATEMENT_REASON_CODES["prohibited"]["ground"]
    assert statement["category"] == "STATEMENT_CATEGORY_UNSAFE_AND_PROHIBITED_PRODUCTS"
    assert statement["category_specification"] == ["KEYWORD_PROHIBITED_PRODUCTS"]
    assert statement["content_type"] == ["CONTENT_TYPE_IMAGE", "CONTENT_TYPE_PRODUCT", "CONTENT_TYPE_TEXT"]
    assert statement["source_type"] == "SOURCE_VOLUNTARY"
    assert statement["content_date"] == listing.created_at.date().isoformat()
    assert statement["application_date"] == decision.decided_at.date().isoformat()
    assert statement["content_date"] < statement["application_date"]
    assert "territorial_scope" not in statement and "content_language" not in statement
    assert "decision_ground_reference_url" not in statement

    settings.LISTINGS = {
        "STATEMENT_DECISION_VISIBILITY": ["DECISION_VISIBILITY_CONTENT_REMOVED"],
        "STATEMENT_TERRITORIAL_SCOPE": ["FR", "DE", "DE"], "STATEMENT_CONTENT_LANGUAGE": "DE",
        "STATEMENT_TERMS_URL": "https://shop.example/terms#listings",
        "STATEMENT_REASON_CODES": {**DEFAULT_STATEMENT_REASON_CODES, "prohibited": {
            **DEFAULT_STATEMENT_REASON_CODES["prohibited"], "category": "STATEMENT_CATEGORY_ANIMAL_WELFARE",
            "category_specification": ["KEYWORD_UNLAWFUL_SALE_ANIMALS"], "ground": "Terms 4.2: no live animals.",
        }},
    }
    statement = decision_statement(decision)
    assert statement_errors(statement) == {}
    assert statement["decision_visibility"] == ["DECISION_VISIBILITY_CONTENT_REMOVED"]
    assert statement["territorial_scope"] == ["DE", "FR"]
    assert statement["content_language"] == "DE"
    assert statement["decision_ground_reference_url"] == "https://shop.example/terms#listings"
    assert (statement["category"], statement["category_specification"], statement["incompatible_content_ground"]) == (
        "STATEMENT_CATEGORY_ANIMAL_WELFARE", ["KEYWORD_UNLAWFUL_SALE_ANIMALS"], "Terms 4.2: no live animals.")
    assert "(removal of content)" in statement["decision_facts"]


def test_a_code_without_terms_and_a_rejection_without_a_code_use_the_terms_of_other(seller_and_moderator):
    seller, moderator = seller_and_moderator
    without = reject(listing_to_review(seller=seller), moderator, reason_code="")
    old = reject(listing_to_review(seller=seller), moderator, reason_code="retired_code")
    for decision in (without, old):
        statement = decision_statement(decision)
        assert statement["category"] == "STATEMENT_CATEGORY_OTHER_VIOLATION_TC"
        assert statement_errors(statement) == {}
    assert decision_statement(without)["decision_facts"].startswith(
        "A moderator reviewed this listing and rejected it (disabling access to content).")
    assert "for this reason: Retired code." in decision_statement(old)["decision_facts"]


def test_the_puid_is_stable_unique_and_of_the_installation(seller_and_moderator, settings):
    seller, moderator = seller_and_moderator
    first = reject(listing_to_review(seller=seller), moderator)
    second = reject(listing_to_review(seller=seller), moderator)
    puid = decision_puid(first)
    assert re.fullmatch(rf"clipcheck-{first.pk}-[0-9a-f]{{12}}", puid)
    assert decision_puid(type(first).objects.get(pk=first.pk)) == puid  # read back: the same
    assert decision_statement(first)["puid"] == puid
    assert decision_puid(second) != puid
    settings.LISTINGS = {"STATEMENT_PUID_NAMESPACE": "shop_eu"}
    assert decision_puid(first).startswith(f"shop_eu-{first.pk}-")
    # A database restored empty reuses ids: a new decision with the same id is another statement.
    first.decided_at += timedelta(microseconds=1)
    assert decision_puid(first, namespace="clipcheck") != puid


def test_only_rejections_in_force_are_restrictions(seller_and_moderator):
    seller, moderator = seller_and_moderator
    kept = reject(listing_to_review(seller=seller), moderator)
    approved = reject(listing_to_review(seller=seller), moderator, to_status=Status.APPROVED)
    held = reject(listing_to_review(seller=seller, status=Status.APPROVED), moderator, to_status=Status.NEEDS_REVIEW)
    undone_listing = listing_to_review(seller=seller)
    undone = reject(undone_listing, moderator)
    review.review_undo(moderator=moderator)  # the moderator's latest decision: the rejection of undone_listing
    undone.refresh_from_db()
    assert undone.undone_at is not None
    assert undone_listing.decisions.filter(reason_code="undo").exists()
    again = reject(Listing.objects.get(pk=kept.listing_id), moderator, reason_code="prohibited")  # rejected again
    assert again.from_status == Status.REJECTED
    assert [decision.pk for decision in restriction_decisions()] == [kept.pk]
    assert {approved.pk, held.pk, undone.pk, again.pk}.isdisjoint(d.pk for d in restriction_decisions())


def test_since_and_until_select_by_decision_time(seller_and_moderator):
    seller, moderator = seller_and_moderator
    now = timezone.now()
    decisions = [reject(listing_to_review(seller=seller), moderator) for _ in range(3)]
    for days, decision in zip((10, 5, 1), decisions, strict=True):
        type(decision).objects.filter(pk=decision.pk).update(decided_at=now - timedelta(days=days))
    chosen = restriction_decisions(since=now - timedelta(days=6), until=now - timedelta(days=1))
    assert [decision.pk for decision in chosen] == [decisions[1].pk]


def test_facts_fit_the_database_limit_however_many_reasons(seller_and_moderator):
    seller, moderator = seller_and_moderator
    decision = reject(listing_to_review(seller=seller, reasons=EVERY_REASON * 40), moderator)
    facts = decision_facts(decision)
    assert len(facts) <= 5000
    assert re.search(r"… and \d+ more reason\(s\)\.$", facts)
    assert statement_errors(decision_statement(decision)) == {}


@pytest.mark.parametrize("text", [
    "write to jane.doe+shop@mail.example.co.uk", "call +49 30 1234567", "call (030) 123-4567", "ring 0301234567",
    "see https://jane.example/profile", "see www.jane-doe.example", "ask @jane_doe",
])
def test_the_scrub_removes_contact_details(text):
    scrubbed = personal_data_scrub(text)
    assert "[removed]" in scrubbed
    assert not re.search(r"\d{3}", scrubbed.replace("[removed]", "")), scrubbed


@pytest.mark.parametrize("text", [
    "Score: 0.210; Threshold: 0.250", "bags (0.81), shoes (0.65)", "similarity 0.912 0.800 1.000",
    "passage 3 (characters 1200–1300)", "Photo 2",
])
def test_the_scrub_keeps_scores_and_positions(text):
    assert personal_data_scrub(text) == text
