"""A stored embedding (or layout) whose bytes do not match its dimension is skipped and
reported, never a 500 for every search and upload (round-3 attack finding 11)."""

import io
import logging

import pytest
from django.core.management import call_command
from prometheus_client import REGISTRY

from clipcheck import vectors
from clipcheck.models import ImageEmbedding
from clipcheck.nearduplicates import LAYOUT_SIZE
from clipcheck.selectors import LAYOUT_VALUES
from listings.models import Listing
from tests.vectors.test_photo_reused import photo, upload

pytestmark = pytest.mark.django_db


@pytest.fixture
def catalogue(make_listing, everything_matches):
    listings = [make_listing(title=f"listing {spot}", photo=photo(spot=(spot, 4))) for spot in (4, 20, 38)]
    call_command("clip_audit", "--no-progress", stdout=io.StringIO(), stderr=io.StringIO())
    return listings


def corrupt(listing, field="vector"):
    ImageEmbedding.objects.filter(sha256=listing.image_sha256).update(**{field: b"\x00" * 100})


def skipped(kind):
    return REGISTRY.get_sample_value("clipcheck_corrupt_stored_vectors_total", {"kind": kind}) or 0.0


def test_search_and_uploads_skip_a_corrupt_embedding_and_report_it(catalogue, log_in_with, seller, client, caplog):
    corrupt(catalogue[1])
    before = skipped("embedding")

    with caplog.at_level(logging.ERROR, logger="clipcheck.vectors"):
        searched = log_in_with("listings.view_listing").post("/clip/search", {"text": "a red bag", "k": 5})
        client.force_login(seller("bob"))
        new = upload(client, photo(spot=(30, 30)))
        copy = upload(client, photo(spot=(4, 4)))

    assert searched.status_code == 200, searched.content
    if vectors.vector_backend().name == vectors.NUMPY:  # pgvector searches its own typed copy
        assert catalogue[1].pk not in [hit["listing_id"] for hit in searched.json()["results"]]
        assert len(searched.json()["results"]) == 2
    assert new.status_code == 201 and new.json()["status"] == "approved", new.content
    assert copy.status_code == 201 and "photo_reused" in [reason["code"] for reason in copy.json()["reasons"]]
    if vectors.vector_backend().name == vectors.NUMPY:
        assert skipped("embedding") > before
        assert f"Stored image embedding {catalogue[1].image_sha256}" in caplog.text
        assert "100 bytes where" in caplog.text


def test_a_photo_whose_own_embedding_is_corrupt_is_computed_again(catalogue, seller, client, caplog):
    corrupt(catalogue[0])
    client.force_login(seller("bob"))
    before = skipped("embedding")

    with caplog.at_level(logging.ERROR, logger="clipcheck.vectors"):
        response = upload(client, photo(spot=(4, 4)))

    assert response.status_code == 201, response.content
    assert skipped("embedding") > before and "is corrupt" in caplog.text
    # Re-checking the listing whose row is corrupt works too.
    call_command("clip_audit", "--no-progress", "--recheck", stdout=io.StringIO(), stderr=io.StringIO())
    assert Listing.objects.get(pk=catalogue[0].pk).checked_at is not None


def test_a_corrupt_layout_is_judged_as_no_layout(catalogue, seller, client):
    corrupt(catalogue[0], field="layout")
    client.force_login(seller("bob"))
    before = skipped("layout")

    response = upload(client, photo(spot=(4, 4)))

    assert response.status_code == 201, response.content
    assert skipped("layout") > before
    assert LAYOUT_VALUES == LAYOUT_SIZE
