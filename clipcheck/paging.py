"""Keyset paging: a table read a page at a time by primary key, never whole.

Each query starts after the last key seen (Sentry's ``RangeQuerySetWrapper``
pattern), so rows inserted or deleted during a long run (an audit, a
duplicates scan) do not shift the pages, and the run can resume after the
last key it finished.
"""

from collections.abc import Iterator

from django.db.models import Model, QuerySet


def keyset_pages(queryset: QuerySet, *, page_size: int, after: int = 0) -> Iterator[list[Model]]:
    """Lists of up to ``page_size`` rows of ``queryset`` with a primary key above ``after``, in key order."""
    if page_size < 1:
        raise ValueError("page_size must be at least 1")
    ordered = queryset.order_by("pk")
    while True:
        page = list(ordered.filter(pk__gt=after)[:page_size])
        if not page:
            return
        after = page[-1].pk
        yield page
