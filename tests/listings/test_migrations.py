"""The data migrations of the verdict work, run forwards on rows stored before it."""

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

pytestmark = pytest.mark.django_db(transaction=True)

BEFORE = [("listings", "0004_listing_seller"), ("clipcheck", "0006_imageembedding_layout")]
AFTER = [("listings", "0006_listing_photos_data"), ("clipcheck", "0008_analysis_match_quality_relative")]


def migrate(targets):
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    return executor.loader.project_state(targets).apps


@pytest.fixture
def back_to_latest():
    yield
    executor = MigrationExecutor(connection)
    migrate(executor.loader.graph.leaf_nodes())  # the next tests need every migration


def test_existing_listings_get_their_photo_and_stored_labels_follow_the_threshold(back_to_latest):
    old = migrate(BEFORE)
    ContentType = old.get_model("contenttypes", "ContentType")
    Listing, Analysis = old.get_model("listings", "Listing"), old.get_model("clipcheck", "Analysis")
    listing = Listing.objects.create(
        title="a red star", description="a red star", image="listings/abc.png", image_sha256="a" * 64,
        title_score=0.70, description_score=0.75, match_quality="excellent", clip_verdict="mismatch",
    )
    # A mismatch at the calibrated threshold that the absolute bands called "excellent".
    analysis = Analysis.objects.create(
        image_sha256="a" * 64, text="a red star", text_sha256="b" * 64, similarity_score=0.70, threshold=0.7121,
        verdict="mismatch", confidence="low", match_quality="excellent", model="m", source="audit", duration_ms=1,
        subject_type=ContentType.objects.get(app_label="listings", model="listing"), subject_id=str(listing.pk),
    )

    new = migrate(AFTER)

    photo = new.get_model("listings", "ListingPhoto").objects.get(listing_id=listing.pk)
    assert (photo.position, photo.image.name, photo.image_sha256) == (0, "listings/abc.png", "a" * 64)
    assert new.get_model("clipcheck", "Analysis").objects.get(pk=analysis.pk).match_quality == "poor"
    migrated = new.get_model("listings", "Listing").objects.get(pk=listing.pk)
    assert (migrated.match_quality, migrated.checked_threshold) == ("poor", 0.7121)
