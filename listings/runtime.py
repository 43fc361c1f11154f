"""The catalogue's own photos and texts as the int8 runtime's calibration and guard sets."""

import logging

from clipcheck.engine.calibration_set import calibration_set_build
from clipcheck.errors import ClipcheckError
from listings.models import Listing
from listings.services import listing_image_decode

logger = logging.getLogger(__name__)

# Fewer listings than this: the shipped generic set calibrates instead.
MIN_CATALOGUE_SAMPLE = 16


def catalogue_calibration_sets(*, checkpoint, count, threshold):
    """(calibration, guard sample) from up to ``2 * count`` listings spread
    over the catalogue, halves disjoint; None when the catalogue is too small.

    Each listing gives its photo with its title and with its description, so
    the guard sees both kinds of text the service scores.
    """
    total = Listing.objects.count()
    if total < MIN_CATALOGUE_SAMPLE:
        return None
    step = max(1, total // (2 * count))
    pairs = []
    for listing in Listing.objects.order_by("pk")[::step][: 2 * count]:
        try:
            picture = listing_image_decode(listing=listing).image
        except ClipcheckError:
            continue  # unreadable photos are the audit's business, not calibration's
        pairs.append((picture, listing.title))
        pairs.append((picture, listing.description))
    if len(pairs) < MIN_CATALOGUE_SAMPLE:
        return None
    # Listings in the first half calibrate, the second half checks.
    calibration, sample = pairs[: len(pairs) // 2], pairs[len(pairs) // 2:]

    def build(chosen, source):
        return calibration_set_build(
            checkpoint=checkpoint, images=[picture for picture, _ in chosen], texts=[text for _, text in chosen],
            source=source, threshold=threshold,
        )

    return build(calibration[: 2 * count], "catalogue"), build(sample, "catalogue (held out)")
