"""Removing what a crash mid-upload leaves behind (``manage.py clip_sweep_orphans``).

``listing_submit`` writes the image to storage, then commits the listing and
its analyses in one transaction. A worker killed between the two leaves an
image file that no listing names; a listing whose image was replaced in the
admin leaves its old file too. Analyses of uploads that never became a
listing are the third kind of leftover: refused uploads under the "reject"
policy, and crashes of versions that stored them before the listing.

Only what is older than a grace period is removed: a file written a moment
ago may belong to an upload whose transaction has not committed yet.
"""

import logging
from dataclasses import dataclass, field
from datetime import timedelta

from django.core.files.storage import default_storage
from django.utils import timezone

from clipcheck.models import Analysis
from listings.models import Listing, ListingPhoto

logger = logging.getLogger(__name__)

# Where listing_image_path puts uploads (listings/<uuid>.<suffix>).
LISTING_IMAGE_DIRECTORY = "listings"
# Storage names checked against the database per query.
CHUNK = 500


@dataclass
class SweepResult:
    files: list = field(default_factory=list)  # storage names removed (or, in a dry run, to remove)
    analyses: int = 0  # unlinked upload analyses removed
    files_kept_recent: int = 0  # orphan files younger than the grace period


def orphans_sweep(*, grace, dry_run=False, storage=None, now=None):
    """Remove listing images no listing names and upload analyses no listing
    owns, when older than ``grace`` (a ``timedelta``)."""
    storage = storage or default_storage
    cutoff = (now or timezone.now()) - grace
    result = SweepResult()
    for names in _chunks(_stored_listing_images(storage), CHUNK):
        # A listing names its primary photo; its other photos are ListingPhoto rows.
        named = set(Listing.objects.filter(image__in=names).values_list("image", flat=True))
        named |= set(ListingPhoto.objects.filter(image__in=names).values_list("image", flat=True))
        for name in names:
            if name in named:
                continue
            if storage.get_modified_time(name) >= cutoff:
                result.files_kept_recent += 1
                continue
            result.files.append(name)
            if not dry_run:
                storage.delete(name)
                logger.info("Removed orphan image %s", name)
    orphans = Analysis.objects.filter(source=Analysis.Source.UPLOAD, subject_id="", created_at__lt=cutoff)
    result.analyses = orphans.count() if dry_run else orphans.delete()[0]
    return result


def _stored_listing_images(storage):
    try:
        _, names = storage.listdir(LISTING_IMAGE_DIRECTORY)
    except FileNotFoundError:
        return
    for name in sorted(names):
        yield f"{LISTING_IMAGE_DIRECTORY}/{name}"


def _chunks(iterable, size):
    chunk = []
    for item in iterable:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def grace_timedelta(hours):
    return timedelta(hours=hours)
