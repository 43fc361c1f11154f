"""The admin's similarity features: the "photo reused" filter, the "similar listings" panel, the search page."""

import io

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command

from tests.vectors.test_photo_reused import photo

pytestmark = pytest.mark.django_db

CHANGELIST = "/admin/listings/listing/"
SEARCH = "/admin/listings/listing/search/"


@pytest.fixture
def audited(make_listing, everything_matches):
    shared = photo(spot=(4, 4))
    listings = {
        "original": make_listing(title="original", photo=shared),
        "copy": make_listing(title="copy", photo=shared),
        "other": make_listing(title="other", photo=photo(spot=(38, 26))),
    }
    call_command("clip_audit", "--no-progress", stdout=io.StringIO(), stderr=io.StringIO())
    return listings


def listing_ids(response):
    return {listing.pk for listing in response.context["cl"].result_list}


def test_the_photo_reused_filter_lists_only_listings_with_that_reason(moderator_client, audited):
    everything = moderator_client.get(CHANGELIST)
    reused = moderator_client.get(CHANGELIST, {"photo_reused": "yes"})

    assert listing_ids(everything) == {listing.pk for listing in audited.values()}
    assert listing_ids(reused) == {audited["copy"].pk}  # the original owns its photo
    assert "Search by text or photo" in everything.content.decode()


def test_the_change_page_shows_the_matching_listing_side_by_side(moderator_client, audited):
    page = moderator_client.get(f"{CHANGELIST}{audited['copy'].pk}/change/").content.decode()

    assert f"Listing #{audited['original'].pk}" in page  # the reason's message
    assert f'class="similar-listing" data-listing-id="{audited["original"].pk}"' in page
    # The most similar first: the original before the other photo.
    assert page.index(f'data-listing-id="{audited["original"].pk}"') < page.index(
        f'data-listing-id="{audited["other"].pk}"'
    )


def test_the_search_page_finds_listings_by_photo(moderator_client, audited):
    response = moderator_client.post(
        SEARCH, {"photo": SimpleUploadedFile("q.png", photo(spot=(38, 26)), content_type="image/png"), "k": 2},
    )

    page = response.content.decode()
    assert response.status_code == 200
    assert page.count('class="search-hit"') == 2
    # The listing with that very photo comes first.
    assert page.split('class="search-hit"')[1].startswith(f' data-listing-id="{audited["other"].pk}"')


def test_the_search_page_finds_listings_by_text_and_refuses_an_empty_query(moderator_client, audited):
    found = moderator_client.post(SEARCH, {"text": "a red photo", "k": 3})
    empty = moderator_client.post(SEARCH, {"text": "  ", "k": 3})

    assert found.content.decode().count('class="search-hit"') == 3
    assert "Give either a text or a photo." in empty.content.decode()


def test_the_search_page_needs_the_view_permission(client, django_user_model, audited):
    client.force_login(django_user_model.objects.create_user("staff", is_staff=True))

    assert client.get(SEARCH).status_code == 403
