"""CSV cells that a spreadsheet shows as text, never runs as a formula.

Sellers choose listing titles; a title such as ``=HYPERLINK("http://x", "!")``
written verbatim to a CSV report runs as a formula when a moderator opens
the report in Excel or LibreOffice (CSV injection). Following OWASP, a text
cell starting with a character that opens a formula (``=``, ``+``, ``-``,
``@``) or with a tab or carriage return gets a leading apostrophe, which
spreadsheets display as text and do not show. Every CSV writer of the
project writes its rows through ``spreadsheet_row``.
"""

from collections.abc import Mapping
from typing import Any, TypeVar

T = TypeVar("T")

# OWASP's list, plus a line feed and the full-width forms some locales'
# spreadsheets also accept as formula starts.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "\n", "\uff1d", "\uff0b", "\uff0d", "\uff20")


def spreadsheet_cell(value: T) -> T | str:
    """``value`` with a leading ``'`` when it is text a spreadsheet would evaluate."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def spreadsheet_row(row: Mapping[str, Any]) -> dict[str, Any]:
    """A ``csv.DictWriter`` row with every text cell made safe."""
    return {key: spreadsheet_cell(value) for key, value in row.items()}
