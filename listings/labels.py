"""Labels for calibrating classify from the catalogue (``clip_calibrate --classify``).

Every listing with a category is a labelled example: its photo against its
category's zero-shot prompt is a "category applies" pair, against every
other category's prompt a "does not apply" pair. A moderator's rejection
with the reason code ``wrong_category`` turns the listing's own category
into a "does not apply" pair (and says nothing about the others).
"""

from dataclasses import dataclass, field

from clipcheck.services.calibration_data import category_similarities
from clipcheck.errors import ClipcheckError
from listings.selectors import catalogue_listings, wrong_category_listing_ids
from listings.services import listing_image_decode


@dataclass
class ClassifyLabels:
    categories: list
    pairs: dict = field(default_factory=dict)  # category -> [(similarity_score, applies)]
    listings: int = 0
    wrong_category: int = 0  # listings whose category moderators rejected
    skipped: list = field(default_factory=list)  # (listing id, reason)

    def all_pairs(self):
        return [pair for pairs in self.pairs.values() for pair in pairs]


def classify_labels(*, batch_size=32):
    """Score every catalogue listing's photo against every category's prompt."""
    listings = list(catalogue_listings().only("pk", "category", "image"))
    categories = sorted({listing.category for listing in listings})
    labels = ClassifyLabels(categories=categories, pairs={category: [] for category in categories})
    wrong = wrong_category_listing_ids()
    for start in range(0, len(listings), batch_size):
        decoded = []
        for listing in listings[start:start + batch_size]:
            try:
                decoded.append((listing, listing_image_decode(listing=listing)))
            except ClipcheckError as exc:
                labels.skipped.append((listing.pk, exc.message))
        if not decoded:
            continue
        rows = category_similarities(images=[image for _, image in decoded], categories=categories)
        for (listing, _), row in zip(decoded, rows):
            labels.listings += 1
            if listing.pk in wrong:
                labels.wrong_category += 1
                labels.pairs[listing.category].append((row[categories.index(listing.category)], False))
                continue
            for category, score in zip(categories, row):
                labels.pairs[category].append((score, category == listing.category))
    return labels
