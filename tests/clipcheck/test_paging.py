"""Keyset paging (clipcheck.paging): every row once, in key order, whatever happens between pages."""

import pytest
from django.contrib.auth import get_user_model

from clipcheck.paging import keyset_pages

pytestmark = pytest.mark.django_db


def row(number):
    return get_user_model().objects.create(username=f"user{number}")


Model = get_user_model()


def test_pages_hold_every_row_once_in_key_order_and_resume_after_a_key():
    rows = [row(number) for number in range(7)]
    pages = list(keyset_pages(Model.objects.all(), page_size=3))
    assert [len(page) for page in pages] == [3, 3, 1]
    assert [row.pk for page in pages for row in page] == [row.pk for row in rows]
    resumed = list(keyset_pages(Model.objects.all(), page_size=3, after=rows[4].pk))
    assert [row.pk for page in resumed for row in page] == [rows[5].pk, rows[6].pk]


def test_rows_deleted_or_added_between_pages_do_not_shift_the_next_page():
    rows = [row(number) for number in range(6)]
    pages = keyset_pages(Model.objects.all(), page_size=2)
    first = next(pages)
    Model.objects.filter(pk__in=[rows[0].pk, rows[1].pk, rows[2].pk]).delete()
    added = row(99)
    rest = [row.pk for page in pages for row in page]
    assert [row.pk for row in first] == [rows[0].pk, rows[1].pk]
    assert rest == [rows[3].pk, rows[4].pk, rows[5].pk, added.pk]
    with pytest.raises(ValueError):
        next(keyset_pages(Model.objects.all(), page_size=0))
