#!/usr/bin/env python
"""Refresh the enumerations of listings/statement_rules.json from the DSA Transparency Database's source.

    git clone https://github.com/digital-services-act/transparency-database /tmp/tdb
    python scripts/transparency_rules.py /tmp/tdb            # HEAD
    python scripts/transparency_rules.py /tmp/tdb --rev v1.2  # a tag or commit

Reads, at that revision, ``app/Models/Statement.php`` (the statement's
enumerations: ``DECISION_VISIBILITIES``, ``STATEMENT_CATEGORIES``,
``KEYWORDS``, ...) and the country and language services, and rewrites the
``source`` and ``enumerations`` of the JSON file. The field rules
(``fields``, transcribed from ``app/Http/Requests/StatementStoreRequest.php``)
are kept as they are: compare that file by hand when the commit changes
(``git diff OLD NEW -- app/Http/Requests/StatementStoreRequest.php``).
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
from pathlib import Path

RULES_FILE = Path(__file__).resolve().parents[1] / "listings" / "statement_rules.json"
REPOSITORY = "https://github.com/digital-services-act/transparency-database"

STATEMENT_PHP = "app/Models/Statement.php"
COUNTRIES_PHP = "app/Services/EuropeanCountriesService.php"
LANGUAGES_PHP = "app/Services/EuropeanLanguagesService.php"
RULES_PHP = "app/Http/Requests/StatementStoreRequest.php"

# (file, PHP constant) of each enumeration the field rules name.
ENUMERATIONS = {
    "DECISION_VISIBILITIES": (STATEMENT_PHP, "DECISION_VISIBILITIES"),
    "DECISION_MONETARIES": (STATEMENT_PHP, "DECISION_MONETARIES"),
    "DECISION_PROVISIONS": (STATEMENT_PHP, "DECISION_PROVISIONS"),
    "DECISION_ACCOUNTS": (STATEMENT_PHP, "DECISION_ACCOUNTS"),
    "ACCOUNT_TYPES": (STATEMENT_PHP, "ACCOUNT_TYPES"),
    "DECISION_GROUNDS": (STATEMENT_PHP, "DECISION_GROUNDS"),
    "INCOMPATIBLE_CONTENT_ILLEGALS": (STATEMENT_PHP, "INCOMPATIBLE_CONTENT_ILLEGALS"),
    "CONTENT_TYPES": (STATEMENT_PHP, "CONTENT_TYPES"),
    "STATEMENT_CATEGORIES": (STATEMENT_PHP, "STATEMENT_CATEGORIES"),
    "KEYWORDS": (STATEMENT_PHP, "KEYWORDS"),
    "SOURCE_TYPES": (STATEMENT_PHP, "SOURCE_TYPES"),
    "AUTOMATED_DETECTIONS": (STATEMENT_PHP, "AUTOMATED_DETECTIONS"),
    "AUTOMATED_DECISIONS": (STATEMENT_PHP, "AUTOMATED_DECISIONS"),
    "EUROPEAN_COUNTRY_CODES": (COUNTRIES_PHP, "EUROPEAN_COUNTRY_CODES"),
    "LANGUAGES": (LANGUAGES_PHP, "ALL_LANGUAGES"),
}

QUOTED = r"'((?:[^'\\]|\\.)*)'"
SCALAR = re.compile(rf"const\s+([A-Z0-9_]+)\s*=\s*{QUOTED}\s*;")
ARRAY = re.compile(r"const\s+([A-Z0-9_]+)\s*=\s*\[(.*?)\];", re.S)
ITEM = re.compile(rf"(?:{QUOTED}\s*=>\s*)?(?:self::([A-Z0-9_]+)|{QUOTED})\s*,?")


def _unquote(text):
    return re.sub(r"\\(.)", r"\1", text)


def php_constants(source):
    """``{name: value}`` of a PHP class's string constants and arrays: an associative
    array becomes a dict (key → label), a plain one a list."""
    scalars = {name: _unquote(value) for name, value in SCALAR.findall(source)}
    constants = dict(scalars)
    for name, body in ARRAY.findall(source):
        items = []
        for key, reference, literal in ITEM.findall(body):
            value = scalars[reference] if reference else _unquote(literal)
            items.append((_unquote(key) if key else None, value))
        if not items:
            continue
        constants[name] = {key: value for key, value in items} if all(key for key, _ in items) else [
            value for _, value in items
        ]
    return constants


def git_show(repository, revision, path):
    return subprocess.run(
        ["git", "-C", str(repository), "show", f"{revision}:{path}"], check=True, capture_output=True, text=True,
    ).stdout


def enumerations_read(repository, revision):
    files = {}
    for path, _ in ENUMERATIONS.values():
        if path not in files:
            files[path] = php_constants(git_show(repository, revision, path))
    return {name: files[path][constant] for name, (path, constant) in ENUMERATIONS.items()}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("repository", help="A clone (or bare mirror) of the transparency-database repository.")
    parser.add_argument("--rev", default="HEAD", help="The revision to read (default HEAD).")
    parser.add_argument("--out", default=str(RULES_FILE), help=f"The rules file to rewrite (default {RULES_FILE}).")
    arguments = parser.parse_args()
    commit = subprocess.run(
        ["git", "-C", arguments.repository, "rev-parse", f"{arguments.rev}^{{commit}}"],
        check=True, capture_output=True, text=True,
    ).stdout.strip()
    out = Path(arguments.out)
    rules = json.loads(out.read_text()) if out.exists() else {"fields": {}}
    rules["source"] = {
        "repository": REPOSITORY, "commit": commit,
        "files": [RULES_PHP, STATEMENT_PHP, COUNTRIES_PHP, LANGUAGES_PHP],
    }
    rules["enumerations"] = enumerations_read(arguments.repository, commit)
    ordered = {key: rules[key] for key in ("about", "source", "batch", "fields", "enumerations") if key in rules}
    out.write_text(json.dumps(ordered, indent=1, ensure_ascii=False) + "\n")
    print(f"{out}: enumerations of {commit}; compare {RULES_PHP} with the fields by hand.")


if __name__ == "__main__":
    main()
