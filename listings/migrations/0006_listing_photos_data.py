"""Existing listings: their image becomes the ListingPhoto at position 0, and
their stored quality band and threshold follow the threshold-relative bands
(clipcheck.scoring.band_bounds) of the threshold their latest check used."""

from django.db import migrations


def forwards(apps, schema_editor):
    from clipcheck.scoring import match_quality
    from clipcheck.settings import clip_settings

    Listing = apps.get_model("listings", "Listing")
    ListingPhoto = apps.get_model("listings", "ListingPhoto")
    Analysis = apps.get_model("clipcheck", "Analysis")
    ContentType = apps.get_model("contenttypes", "ContentType")
    listing_type = ContentType.objects.filter(app_label="listings", model="listing").first()
    last_pk = 0
    while True:
        listings = list(Listing.objects.filter(pk__gt=last_pk).order_by("pk")[:500])
        if not listings:
            break
        have_photo = set(
            ListingPhoto.objects.filter(listing__in=listings, position=0).values_list("listing_id", flat=True)
        )
        ListingPhoto.objects.bulk_create([
            ListingPhoto(listing=listing, image=listing.image.name, image_sha256=listing.image_sha256, position=0)
            for listing in listings
            if listing.pk not in have_photo and listing.image
        ])
        for listing in listings:
            if listing.title_score is None or listing.description_score is None:
                continue
            latest = None
            if listing_type is not None:
                latest = Analysis.objects.filter(
                    subject_type=listing_type, subject_id=str(listing.pk)
                ).order_by("-created_at", "-id").first()
            threshold = latest.threshold if latest is not None else float(clip_settings.THRESHOLD)
            listing.checked_threshold = threshold
            listing.match_quality = match_quality(min(listing.title_score, listing.description_score), threshold)
            listing.save(update_fields=["checked_threshold", "match_quality"])
        last_pk = listings[-1].pk


def backwards(apps, schema_editor):
    apps.get_model("listings", "ListingPhoto").objects.all().delete()


class Migration(migrations.Migration):

    dependencies = [
        ("listings", "0005_listing_photos"),
        ("clipcheck", "0008_analysis_match_quality_relative"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(forwards, backwards)]
