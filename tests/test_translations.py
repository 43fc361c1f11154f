"""The messages' translations (clipcheck/locale, listings/locale): complete, compiled, and used.

CI has no msgfmt: the committed .mo files are read with Python's gettext and
compared with the .po files, so a .po edited without recompiling
(``manage.py compilemessages``) fails here.
"""

import ast
import gettext
import re
import string
from pathlib import Path

import pytest

from clipcheck.default_attributes import LANGUAGES

REPO = Path(__file__).resolve().parent.parent
APPS = ("clipcheck", "listings")
TRANSLATED = [language for language in LANGUAGES if language != "en"]
GETTEXT_NAMES = {"_", "gettext", "gettext_lazy", "pgettext", "ngettext"}


def po_entries(path):
    """``{msgid: msgstr}`` of a .po file (plain entries, as this project writes them), the header left out."""
    entries, key, current = {}, None, None
    for line in path.read_text(encoding="utf-8").splitlines() + [""]:
        match = re.match(r'^(msgid|msgstr) (".*")$', line)
        if match:
            key = match[1]
            current = {**(current or {}), key: ast.literal_eval(match[2])}
        elif line.startswith('"') and key:
            current[key] += ast.literal_eval(line)
        elif not line.strip() and current:
            if current.get("msgid"):
                entries[current["msgid"]] = current.get("msgstr", "")
            current, key = None, None
        elif line.startswith("#,") and "fuzzy" in line:
            pytest.fail(f"{path}: a fuzzy entry is not used by gettext: translate it and drop the flag")
    return entries


def source_messages(app):
    """Every literal passed to a gettext function in the app's Python code."""
    messages = set()
    for path in (REPO / app).rglob("*.py"):
        if "migrations" in path.parts:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in GETTEXT_NAMES
                    and node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
                messages.add(node.args[0].value)
    return messages


def fields(text):
    return sorted(name for _, name, _, _ in string.Formatter().parse(text) if name)


CATALOGUES = [(app, language) for app in APPS for language in TRANSLATED]


@pytest.mark.parametrize(("app", "language"), CATALOGUES)
def test_every_message_of_the_code_is_translated_keeping_its_placeholders(app, language):
    entries = po_entries(REPO / app / "locale" / language / "LC_MESSAGES" / "django.po")
    assert sorted(source_messages(app) - set(entries)) == []  # run makemessages, then translate
    untranslated = [msgid for msgid, msgstr in entries.items() if not msgstr.strip()]
    assert untranslated == []
    assert [msgid for msgid, msgstr in entries.items() if fields(msgid) != fields(msgstr)] == []


@pytest.mark.parametrize(("app", "language"), CATALOGUES)
def test_the_committed_mo_file_is_the_compiled_po_file(app, language):
    directory = REPO / app / "locale" / language / "LC_MESSAGES"
    entries = po_entries(directory / "django.po")
    with open(directory / "django.mo", "rb") as mo:
        compiled = gettext.GNUTranslations(mo)
    catalogue = {msgid: msgstr for msgid, msgstr in compiled._catalog.items() if msgid}
    assert catalogue == entries
    assert compiled.info()["content-type"] == "text/plain; charset=UTF-8"


def test_django_serves_the_translations(settings):
    from django.utils import translation

    from clipcheck.verdicts import suggestion
    from listings.similarity import reasons_for_seller

    reason = {"code": "attribute_conflict", "field": "title", "attribute": "colour", "text_says": "rot",
              "photo_shows": "blau", "text_score": 0.1, "photo_shows_score": 0.3, "threshold": 0.2}
    assert suggestion([reason], language="de") == "Das Foto zeigt „blau“; Ihr Titel nennt „rot“."
    assert suggestion([reason], language="en") == "The photo looks blau; your title says rot."
    assert reasons_for_seller([{"code": "photo_reused"}], language="fr")[0]["message"] == (
        "Cette photo est déjà utilisée par une autre annonce.")
    # Asking for one language leaves the active one alone.
    assert translation.get_language() == settings.LANGUAGE_CODE
