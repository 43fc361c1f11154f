"""Django's own backup (docs/operations.md#backups) round-trips the catalogue on
every database the suite runs on: SQLite, and PostgreSQL without pgvector when
DATABASE_URL names one (with pgvector: tests/vectors/test_backups.py)."""

import io
import json

import numpy as np
import pytest
from django.core.management import call_command

from clipcheck.checks import check_database_router
from clipcheck.models import Adaptation, Analysis, CalibratedThreshold, ImageEmbedding
from listings.models import Listing, ListingPhoto, ModerationDecision
from listings.services import listing_check, listings_decide
from tests.support.backups import backup_and_restore, database_snapshot, documented_commands
from tests.support.listings import MISMATCHING_TEXT
from tests.support.users import moderators_group, user_with_token


@pytest.mark.django_db
def test_a_plain_dumpdata_succeeds_and_holds_no_model_without_a_table():
    output = io.StringIO()
    call_command("dumpdata", stdout=output)  # failed with "no such table: clipcheck_imagevector"
    labels = {row["model"] for row in json.loads(output.getvalue())}
    assert "clipcheck.imagevector" not in labels and "clipcheck.clipcheckpermissions" not in labels
    assert "auth.permission" in labels  # everything else is there


def test_the_docs_print_a_backup_and_a_restore():
    assert [command[0] for command in documented_commands()] == ["dumpdata", "migrate", "flush", "loaddata"]


def catalogue(make_listing, moderator):
    """Listings checked by the model (analyses, embeddings, reasons), decided by a
    moderator, with a seller's token, a calibration and an adaptation."""
    seller, _ = user_with_token("storefront", permissions=["listings.add_listing"])
    moderator.groups.add(moderators_group())
    matching = make_listing(seller=seller)
    mismatching = make_listing(description=MISMATCHING_TEXT, category="shoes")
    ListingPhoto.objects.create(
        listing=matching, image=matching.image.name, image_sha256=matching.image_sha256, position=1,
    )
    for listing in (matching, mismatching):
        listing_check(listing=listing)
    assert listings_decide(listings=[mismatching], moderator=moderator, to_status=Listing.Status.REJECTED,
                           note="wrong item", reason_code="wrong_item") == 1
    CalibratedThreshold.objects.create(model="m", threshold=0.25, source="moderation", counts={"match": 3})
    Adaptation.objects.create(model="m", version=1, active=True, categories=["shoes"],
                              head=np.arange(4, dtype="<f4").tobytes(), label_digest="0" * 64)
    return matching, mismatching


@pytest.mark.django_db(transaction=True)
def test_the_documented_backup_restores_listings_decisions_analyses_and_embeddings(
    tmp_path, make_listing, moderator, split_threshold,
):
    matching, mismatching = catalogue(make_listing, moderator)
    before = database_snapshot()
    for label, least in (("listings.Listing", 2), ("listings.ListingPhoto", 1), ("listings.ModerationDecision", 1),
                         ("clipcheck.Analysis", 4), ("clipcheck.ImageEmbedding", 2), ("authtoken.Token", 1),
                         ("auth.Group", 1), ("clipcheck.Adaptation", 1)):
        assert len(before[label]) >= least, label

    backup_and_restore(tmp_path)

    assert database_snapshot() == before
    # The restored catalogue works as before: analyses find their listings, photos
    # are read from storage, a re-check gives the same verdicts, new rows get new ids.
    assert {analysis.subject for analysis in Analysis.objects.all()} == {matching, mismatching}
    assert ModerationDecision.objects.get().moderator.groups.get().permissions.count() > 0
    rechecked = listing_check(listing=Listing.objects.get(pk=matching.pk))
    assert rechecked.is_match and rechecked.title_analysis.similarity_score == pytest.approx(matching.title_score)
    assert Listing.objects.get(pk=mismatching.pk).status == Listing.Status.REJECTED
    assert make_listing().pk > mismatching.pk
    assert ImageEmbedding.objects.count() == 2


@pytest.mark.django_db
def test_without_the_router_the_check_says_dumpdata_fails(settings):
    assert check_database_router() == []
    settings.DATABASE_ROUTERS = []
    warning, = check_database_router()
    assert warning.id == "clipcheck.W006"
    assert "clipcheck.routers.ClipcheckRouter" in warning.hint
