"""The Transparency Database's rules as data (listings/statement_rules.json) and the validator that applies
them: each kind of rule the database's StatementStoreRequest uses, on a statement it accepts."""

import copy
import re

import pytest

from listings.statement_rules import (
    batch_errors,
    enumeration,
    enumeration_label,
    field_rules,
    rules,
    source,
    statement_errors,
)
from scripts.transparency_rules import php_constants
from tests.support.statements import ACCEPTED_STATEMENT as ACCEPTED


def changed(**fields):
    statement = copy.deepcopy(ACCEPTED)
    for name, value in fields.items():
        if value is ...:
            statement.pop(name, None)
        else:
            statement[name] = value
    return statement


def test_the_rules_name_the_upstream_files_and_commit():
    assert source()["repository"] == "https://github.com/digital-services-act/transparency-database"
    assert re.fullmatch(r"[0-9a-f]{40}", source()["commit"])
    assert "app/Http/Requests/StatementStoreRequest.php" in source()["files"]
    for name, rule in field_rules().items():
        if "in" in rule:
            assert enumeration(rule["in"]), name
    print(f"\nrules of {source()['commit'][:12]}: {len(field_rules())} fields, "
          f"{sum(len(values) for values in rules()['enumerations'].values())} enumerated values")


def test_the_database_accepts_the_reference_statement():
    assert statement_errors(ACCEPTED) == {}


@pytest.mark.parametrize(("fields", "field", "message"), [
    # required
    ({"decision_ground": ...}, "decision_ground", "The decision_ground field is required."),
    ({"decision_facts": "  "}, "decision_facts", "The decision_facts field is required."),
    ({"content_type": []}, "content_type", "The content_type field is required."),
    ({"puid": ...}, "puid", "The puid field is required."),
    ({"automated_detection": ...}, "automated_detection", "The automated_detection field is required."),
    # enumerations (keys of the associative ones, values of the plain ones)
    ({"category": "Consumer information infringements"}, "category", "The selected category is invalid."),
    ({"category_specification": ["KEYWORD_NOT_THERE"]}, "category_specification",
     "The selected category_specification is invalid."),
    ({"content_type": ["CONTENT_TYPE_PRODUCT", "CONTENT_TYPE_LISTING"]}, "content_type",
     "The selected content_type is invalid."),
    ({"automated_detection": "yes"}, "automated_detection", "The selected automated_detection is invalid."),
    ({"automated_decision": "Partially automated"}, "automated_decision", "The selected automated_decision is invalid."),
    ({"source_type": "SOURCE_OWN"}, "source_type", "The selected source_type is invalid."),
    ({"territorial_scope": ["DE", "US"]}, "territorial_scope", "The selected territorial_scope is invalid."),
    ({"content_language": "en"}, "content_language", "The selected content_language is invalid."),
    ({"decision_visibility": ["DECISION_VISIBILITY_HIDDEN"]}, "decision_visibility",
     "The selected decision_visibility is invalid."),
    # arrays
    ({"content_type": "CONTENT_TYPE_PRODUCT"}, "content_type", "The content_type field must be an array."),
    ({"decision_visibility": "DECISION_VISIBILITY_CONTENT_DISABLED"}, "decision_visibility",
     "The decision_visibility field must be an array."),
    # lengths
    ({"decision_facts": "x" * 5001}, "decision_facts", "The decision_facts field must not be greater than 5000 characters."),
    ({"incompatible_content_ground": "x" * 501}, "incompatible_content_ground",
     "The incompatible_content_ground field must not be greater than 500 characters."),
    ({"incompatible_content_explanation": "x" * 2001}, "incompatible_content_explanation",
     "The incompatible_content_explanation field must not be greater than 2000 characters."),
    ({"puid": "p" * 501}, "puid", "The puid field must not be greater than 500 characters."),
    # formats
    ({"puid": "clipcheck 17"}, "puid", "The puid format is invalid."),
    ({"puid": "clipcheck-17\n"}, "puid", "The puid format is invalid."),
    ({"content_date": "2026-7-1"}, "content_date", "The content_date does not match the format YYYY-MM-DD."),
    ({"application_date": "2026-02-30"}, "application_date", "The application_date does not match the format YYYY-MM-DD."),
    ({"application_date": "2026-07-02T10:00:00"}, "application_date",
     "The application_date does not match the format YYYY-MM-DD."),
    ({"content_date": "1999-12-31"}, "content_date", "The content_date field must be a date after or equal to 2000-01-01."),
    ({"application_date": "2019-12-31"}, "application_date",
     "The application_date field must be a date after or equal to 2020-01-01."),
    ({"application_date": "2038-01-02"}, "application_date",
     "The application_date field must be a date before or equal to 2038-01-01."),
    ({"decision_ground_reference_url": "terms page"}, "decision_ground_reference_url",
     "The decision_ground_reference_url field must be a valid URL."),
    ({"content_id_ean": "123"}, "content_id_ean", "The content_id_ean format is invalid."),
    ({"content_id": {"EAN-13": "12345"}}, "content_id", "The content_id.EAN-13 format is invalid."),
    # required_if / required_if (array contains) / required_without_all
    ({"incompatible_content_ground": ...}, "incompatible_content_ground",
     "The incompatible_content_ground field is required."),
    ({"decision_ground": "DECISION_GROUND_ILLEGAL_CONTENT", "incompatible_content_ground": ...,
      "incompatible_content_explanation": ...}, "illegal_content_legal_ground",
     "The illegal_content_legal_ground field is required."),
    ({"content_type": ["CONTENT_TYPE_OTHER"]}, "content_type_other", "The content_type_other field is required."),
    ({"decision_visibility": ["DECISION_VISIBILITY_OTHER"]}, "decision_visibility_other",
     "The decision_visibility_other field is required."),
    ({"decision_visibility": ...}, "decision_visibility", "The decision_visibility field is required."),
    ({"decision_visibility": ...}, "decision_account", "The decision_account field is required."),
    ({"decision_monetary": "DECISION_MONETARY_OTHER"}, "decision_monetary_other",
     "The decision_monetary_other field is required."),
    # exclude_unless / exclude_if: what the database would drop is reported (strict)
    ({"illegal_content_explanation": "It is illegal."}, "illegal_content_explanation",
     "The database drops illegal_content_explanation for this statement: it would be ignored."),
    ({"source_identity": "A notifier"}, "source_identity",
     "The database drops source_identity for this statement: it would be ignored."),
    ({"content_type_other": "A listing"}, "content_type_other",
     "The database drops content_type_other for this statement: it would be ignored."),
    # a field the database does not know
    ({"seller_email": "x@example.com"}, "seller_email", "The database has no field seller_email: it would be ignored."),
])
def test_each_rule_of_the_database_is_applied(fields, field, message):
    errors = statement_errors(changed(**fields))
    assert message in errors.get(field, []), errors


def test_alternatives_the_rules_allow_are_accepted():
    assert statement_errors(changed(decision_visibility=..., decision_account="DECISION_ACCOUNT_SUSPENDED")) == {}
    assert statement_errors(changed(decision_visibility=None, decision_provision="DECISION_PROVISION_TOTAL_SUSPENSION")) == {}
    assert statement_errors(changed(territorial_scope=None, content_language=None, category_specification=None)) == {}
    assert statement_errors(changed(content_type=["CONTENT_TYPE_OTHER"], content_type_other="A listing")) == {}
    assert statement_errors(changed(decision_ground_reference_url="https://shop.example/terms#4")) == {}
    assert statement_errors(changed(incompatible_content_illegal="No", content_id={"EAN-13": "0123456789123"})) == {}
    assert statement_errors(changed(
        decision_ground="DECISION_GROUND_ILLEGAL_CONTENT", incompatible_content_ground=...,
        incompatible_content_explanation=..., illegal_content_legal_ground="Art. 3",
        illegal_content_explanation="Sale forbidden by law.",
    )) == {}


def test_a_batch_holds_1_to_100_statements_and_names_the_ones_refused():
    statements = [changed(puid=f"p-{index}") for index in range(100)]
    assert batch_errors(statements) == {}
    assert "statements" in batch_errors(statements + [changed(puid="p-100")])
    assert "statements" in batch_errors([])
    statements[7] = changed(puid="p-7", category="STATEMENT_CATEGORY_NONE")
    assert list(batch_errors(statements)) == ["statement_7"]


def test_labels_are_the_databases_words():
    assert enumeration_label("DECISION_VISIBILITIES", "DECISION_VISIBILITY_CONTENT_DISABLED") == "Disabling access to content"
    assert enumeration_label("AUTOMATED_DETECTIONS", "Yes") == "Yes"


def test_the_refresh_script_reads_the_databases_php_constants():
    source_text = """
    class Statement extends Model {
        public const SOURCE_VOLUNTARY = 'Own voluntary initiative';
        public const KEYWORD_MISLEADING_INFO_CONSUMER_RIGHTS = 'Misleading information about the consumer\\'s rights';
        public const AUTOMATED_DETECTION_YES = 'Yes';
        public const AUTOMATED_DETECTION_NO = 'No';
        public const AUTOMATED_DETECTIONS = [
            self::AUTOMATED_DETECTION_YES,
            self::AUTOMATED_DETECTION_NO,
        ];
        public const KEYWORDS = [
            'KEYWORD_MISLEADING_INFO_CONSUMER_RIGHTS' => self::KEYWORD_MISLEADING_INFO_CONSUMER_RIGHTS,
            'SOURCE_VOLUNTARY' => self::SOURCE_VOLUNTARY,
        ];
        public const EUROPEAN_COUNTRY_CODES = [
            'AT',
            'BE',
        ];
    }
    """
    constants = php_constants(source_text)
    assert constants["AUTOMATED_DETECTIONS"] == ["Yes", "No"]
    assert constants["KEYWORDS"] == {
        "KEYWORD_MISLEADING_INFO_CONSUMER_RIGHTS": "Misleading information about the consumer's rights",
        "SOURCE_VOLUNTARY": "Own voluntary initiative",
    }
    assert constants["EUROPEAN_COUNTRY_CODES"] == ["AT", "BE"]
