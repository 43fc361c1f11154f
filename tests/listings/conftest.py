import pytest

# Listings, moderators and thresholds come from tests/support/listing_fixtures.py
# (a plugin of the root conftest), shared with tests/vectors.


@pytest.fixture(autouse=True)
def listing_media(media_root):
    return media_root


@pytest.fixture
def seller_client(client, log_in_with):
    """The storefront's client: a seller allowed to upload listings."""
    return log_in_with("listings.add_listing")
