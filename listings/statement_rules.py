"""The DSA Transparency Database's rules for a statement of reasons, and a validator that applies them.

The rules are data (``statement_rules.json`` beside this module): the field
rules transcribed from the database's
``app/Http/Requests/StatementStoreRequest.php`` and the enumerations read
from its ``app/Models/Statement.php`` and country and language services by
``scripts/transparency_rules.py``; ``SOURCE`` names the repository and the
commit they came from.

``statement_errors`` applies them the way the database's validator
(Laravel's) does: ``{field: [message, ...]}``, empty for a statement the
database accepts. It is stricter in one respect: a field the database does
not know, or one it would drop (``exclude_unless``), is reported, because
the database would silently ignore what we meant to tell it.
"""

import json
import re
from collections.abc import Callable, Mapping
from datetime import date
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

RULES_PATH = Path(__file__).with_name("statement_rules.json")

DATE = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")
# Laravel's "url" rule in short: a scheme, a host, no white space.
URL = re.compile(r"^[a-z][a-z0-9+.-]*://[^\s/?#]+[^\s]*$", re.I)


# A rule of statement_rules.json, and a field's value in a statement: JSON.
Rule = Mapping[str, Any]


@cache
def rules() -> dict[str, Any]:
    return json.loads(RULES_PATH.read_text())


def enumeration(name: str) -> list[str]:
    """The accepted values of one of the database's enumerations (keys of an associative one)."""
    return list(rules()["enumerations"][name])


def enumeration_label(name: str, value: str) -> str:
    """The database's words for ``value`` of enumeration ``name`` (the value itself for a plain list)."""
    values = rules()["enumerations"][name]
    return values.get(value, value) if isinstance(values, dict) else value


def field_rules() -> dict[str, Rule]:
    return rules()["fields"]


def max_batch() -> int:
    return rules()["batch"]["max_statements"]


def source() -> dict[str, Any]:
    """``{"repository", "commit", "files"}``: where the rules come from."""
    return rules()["source"]


def _empty(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip()) or (isinstance(value, (list, dict)) and not value)


def _contains(value: Any, needle: Any) -> bool:
    return isinstance(value, list) and needle in value


def _excluded(rule: Rule, statement: Mapping[str, Any]) -> bool:
    """True when the database drops the field before validating (Laravel's exclude_unless / exclude_if)."""
    if "exclude_unless" in rule:
        other, expected = rule["exclude_unless"]
        if statement.get(other) != expected:
            return True
    if "exclude_unless_contains" in rule:
        other, expected = rule["exclude_unless_contains"]
        if not _contains(statement.get(other), expected):
            return True
    if "exclude_if" in rule:
        other, expected = rule["exclude_if"]
        if statement.get(other) == expected:
            return True
    return False


def _required(rule: Rule, statement: Mapping[str, Any]) -> bool:
    if rule.get("required"):
        return True
    if "required_if" in rule:
        other, expected = rule["required_if"]
        if statement.get(other) == expected:
            return True
    if "required_if_contains" in rule:
        other, expected = rule["required_if_contains"]
        if _contains(statement.get(other), expected):
            return True
    if "required_without_all" in rule:
        return all(_empty(statement.get(other)) for other in rule["required_without_all"])
    return False


def _valid_date(value: Any) -> bool:
    if not isinstance(value, str) or not DATE.match(value):
        return False
    try:
        date.fromisoformat(value)
    except ValueError:
        return False  # 2026-02-30: PHP reads it as 2026-03-02, which does not format back
    return True


def _type_errors(field: str, rule: Rule, value: Any) -> str | None:
    """The type message of ``value``, or None when its type is right."""
    kind = rule.get("type")
    if kind == "array" and not isinstance(value, list):
        return f"The {field} field must be an array."
    if kind == "object" and not isinstance(value, dict):
        return f"The {field} field must be an array."
    if kind in ("string", None) and not isinstance(value, str):
        return f"The {field} field must be a string."
    return None


def _in_error(field: str, rule: Rule, value: Any) -> str | None:
    accepted = set(enumeration(rule["in"]))
    if rule.get("nullable"):
        accepted.add("null")  # Laravel's "in:null,..." of the nullable enumerations
    items = value if isinstance(value, list) else [value]
    if any(not isinstance(item, str) or item not in accepted for item in items):
        return f"The selected {field} is invalid."
    return None


def _max_error(field: str, rule: Rule, value: Any) -> str | None:
    if len(value) <= rule["max"]:
        return None
    unit = "items" if isinstance(value, list) else "characters"
    return f"The {field} field must not be greater than {rule['max']} {unit}."


def _regex_error(field: str, rule: Rule, value: Any) -> str | None:
    if isinstance(value, str) and not re.fullmatch(rule["regex"], value):
        return f"The {field} format is invalid."
    return None


def _url_error(field: str, rule: Rule, value: Any) -> str | None:
    if rule["url"] and isinstance(value, str) and not (URL.match(value) and urlsplit(value).hostname):
        return f"The {field} field must be a valid URL."
    return None


def _date_error(field: str, rule: Rule, value: Any) -> str | None:
    if not _valid_date(value):
        return f"The {field} does not match the format YYYY-MM-DD."
    if "after_or_equal" in rule and value < rule["after_or_equal"]:
        return f"The {field} field must be a date after or equal to {rule['after_or_equal']}."
    if "before_or_equal" in rule and value > rule["before_or_equal"]:
        return f"The {field} field must be a date before or equal to {rule['before_or_equal']}."
    return None


# Each rule key of statement_rules.json and how a value breaks it, in Laravel's order.
_RULE_CHECKS: tuple[tuple[str, Callable[[str, Rule, Any], str | None]], ...] = (
    ("in", _in_error), ("max", _max_error), ("regex", _regex_error), ("url", _url_error),
    ("date_format", _date_error),
)


def _value_errors(field: str, rule: Rule, value: Any) -> list[str]:
    """The messages for a present, non-null ``value`` of ``field``."""
    type_error = _type_errors(field, rule, value)
    if type_error:
        return [type_error]
    if rule.get("type") == "object":
        return [
            message for key, key_rule in rule.get("keys", {}).items() if key in value
            for message in _value_errors(f"{field}.{key}", key_rule, value[key])
        ]
    errors = [check(field, rule, value) for key, check in _RULE_CHECKS if key in rule]
    return [error for error in errors if error]


def statement_errors(statement: Any) -> dict[str, list[str]]:
    """``{field: [message, ...]}`` for every rule of the database that ``statement`` breaks; ``{}`` when none."""
    if not isinstance(statement, dict):
        return {"statement": ["A statement must be a JSON object."]}
    fields = field_rules()
    errors: dict[str, list[str]] = {}
    for field in statement:
        if field not in fields:
            errors[field] = [f"The database has no field {field}: it would be ignored."]
    for field, rule in fields.items():
        present = field in statement
        value = statement.get(field)
        if _excluded(rule, statement):
            if present and not _empty(value):
                errors[field] = [f"The database drops {field} for this statement: it would be ignored."]
            continue
        if _required(rule, statement) and _empty(value):
            errors[field] = [f"The {field} field is required."]
            continue
        if not present or value is None:
            continue  # optional and absent (or null: Laravel validates nothing else of it)
        messages = _value_errors(field, rule, value)
        if messages:
            errors[field] = messages
    return errors


def batch_errors(statements: Any) -> dict[str, Any]:
    """The database's rules for ``POST /api/v1/statements``: ``{"statements": [...]}`` of 1 to 100
    statements with distinct puids. ``{key: [message]}``, the per-statement ones under ``statement_<index>``."""
    limits = rules()["batch"]
    if not isinstance(statements, list) or not limits["min_statements"] <= len(statements) <= limits["max_statements"]:
        return {"statements": [
            f"The statements field must have between {limits['min_statements']} and {limits['max_statements']} items."
        ]}
    errors: dict[str, Any] = {}
    for index, statement in enumerate(statements):
        found = statement_errors(statement)
        if found:
            errors[f"statement_{index}"] = found
    return errors
