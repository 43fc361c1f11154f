"""Labels from the catalogue: for calibrating classify (``clip_calibrate --classify``)
and for learning the category adaptation (``clip_adapt``).

Every listing with a category is a labelled example: its photo against its
category's zero-shot prompt is a "category applies" pair, against every
other category's prompt a "does not apply" pair. A moderator's rejection
with the reason code ``wrong_category`` turns the listing's own category
into a "does not apply" pair (and says nothing about the others).
"""

from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from clipcheck import selectors as clip_selectors
from clipcheck.adaptation import MIN_PHOTOS_PER_CATEGORY
from clipcheck.errors import ClipcheckError
from clipcheck.services.adaptation_learning import LabelledPhotos, MatchLabels
from clipcheck.services.calibration_data import category_similarities
from clipcheck.services.embeddings import image_embeddings_compute
from clipcheck.services.thresholds import model_id
from listings.models import Listing
from listings.selectors import (
    WRONG_CATEGORY,
    catalogue_listings,
    latest_decisions,
    moderation_labels,
    wrong_category_listing_ids,
)
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


def decoded_batches(listings, *, batch_size, skipped):
    """``(batch, [(listing, decoded image), ...])`` per ``batch_size`` listings; a listing whose
    photo cannot be decoded is left out and noted in ``skipped`` as (id, reason)."""
    for start in range(0, len(listings), batch_size):
        batch, decoded = listings[start:start + batch_size], []
        for listing in batch:
            try:
                decoded.append((listing, listing_image_decode(listing=listing)))
            except ClipcheckError as exc:
                skipped.append((listing.pk, exc.message))
        yield batch, decoded


def classify_labels(*, batch_size=32):
    """Score every catalogue listing's photo against every category's prompt."""
    listings = list(catalogue_listings().only("pk", "category", "image"))
    categories = sorted({listing.category for listing in listings})
    labels = ClassifyLabels(categories=categories, pairs={category: [] for category in categories})
    wrong = wrong_category_listing_ids()
    for _, decoded in decoded_batches(listings, batch_size=batch_size, skipped=labels.skipped):
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


# clip_adapt


@dataclass
class AdaptationLabels:
    photos: LabelledPhotos
    provenance: Counter  # where the labels come from (see ``label_provenance``)
    too_few: dict  # category -> labelled photos, for categories below MIN_PHOTOS_PER_CATEGORY (left out)
    skipped: list = field(default_factory=list)  # (listing id, reason)
    encoded: int = 0  # photos that had no stored embedding and were encoded now


def label_provenance(decision):
    """What a listing's category label rests on: ``seller`` (no decision yet), ``approved`` (a
    moderator approved a flagged listing), ``sampled`` (a moderator approved it in the random
    review sample of machine approvals), ``rejected`` (rejected for another reason: its category
    stands) or ``wrong_category`` (rejected for its category: counts against it)."""
    if decision is None:
        return "seller"
    to_status, reason_code, sampled = decision
    if to_status == Listing.Status.APPROVED:
        return "sampled" if sampled else "approved"
    return "wrong_category" if reason_code == WRONG_CATEGORY else "rejected"


def adaptation_labels(*, batch_size=32, progress=None):
    """Every catalogue listing's photo embedding with its label; a photo without a stored
    embedding for the current model is encoded (and stored) once, ``batch_size`` at a time.
    ``progress(n)`` is called as photos are encoded."""
    model = model_id()
    decisions = latest_decisions()
    listings = list(catalogue_listings().only("pk", "category", "image", "image_sha256"))
    provenance = {listing.pk: label_provenance(decisions.get(listing.pk)) for listing in listings}
    categories, too_few = _learnable_categories(listings, provenance)
    listings = [listing for listing in listings if listing.category in categories]
    labels = AdaptationLabels(photos=None, provenance=Counter(provenance[listing.pk] for listing in listings),
                              too_few=too_few)
    vectors = _listing_embeddings(listings, model=model, batch_size=batch_size, labels=labels, progress=progress)
    labels.photos = _labelled_photos(
        [listing for listing in listings if listing.pk in vectors], vectors=vectors, categories=categories,
        provenance=provenance,
    )
    return labels


def _learnable_categories(listings, provenance):
    """``(categories with MIN_PHOTOS_PER_CATEGORY labelled photos, {category: photos} of the others)``."""
    learnt = Counter(listing.category for listing in listings if provenance[listing.pk] != "wrong_category")
    categories = sorted(category for category, count in learnt.items() if count >= MIN_PHOTOS_PER_CATEGORY)
    return categories, {category: count for category, count in learnt.items() if count < MIN_PHOTOS_PER_CATEGORY}


def _labelled_photos(listings, *, vectors, categories, provenance):
    """The ``LabelledPhotos`` of ``listings``: a wrong_category rejection is known only *against* its category."""
    index = {category: number for number, category in enumerate(categories)}
    truth, against = [], []
    for listing in listings:
        wrong = provenance[listing.pk] == "wrong_category"
        truth.append(-1 if wrong else index[listing.category])
        against.append(index[listing.category] if wrong else -1)
    return LabelledPhotos(
        keys=[listing.pk for listing in listings],
        embeddings=np.stack([vectors[listing.pk] for listing in listings]) if listings else np.zeros((0, 1)),
        categories=categories, truth=np.array(truth, dtype=int), against=np.array(against, dtype=int),
    )


def _listing_embeddings(listings, *, model, batch_size, labels, progress):
    """``{listing id: embedding}``: stored ones by the photo's hash, the rest decoded and encoded in batches."""
    stored = clip_selectors.image_embeddings_get(
        hashes=[listing.image_sha256 for listing in listings if listing.image_sha256], model=model
    )
    vectors = {listing.pk: stored[listing.image_sha256] for listing in listings if listing.image_sha256 in stored}
    missing = [listing for listing in listings if listing.pk not in vectors]
    for batch, decoded in decoded_batches(missing, batch_size=batch_size, skipped=labels.skipped):
        if decoded:
            embeddings = image_embeddings_compute(images=[image for _, image in decoded], model=model)
            vectors.update({listing.pk: vector for (listing, _), vector in zip(decoded, embeddings)})
            labels.encoded += len(decoded)
        if progress is not None:
            progress(len(batch))
    return vectors


# Rejections that say the text does not describe the photo; other reasons
# (wrong category, prohibited, duplicate, ...) say nothing of the text.
TEXT_MISMATCH_REASONS = ("misleading_description", "wrong_photo")


def match_labels():
    """Moderators' text-photo verdicts for the current model: approved = the texts describe the
    photo, rejected as ``misleading_description`` or ``wrong_photo`` = they do not."""
    labels = [label for label in moderation_labels(model=model_id()) if _says_something_of_the_text(label)]
    return MatchLabels(
        keys=[label.listing_id for label in labels], scores=np.array([label.score for label in labels]),
        matches=np.array([label.is_match for label in labels], dtype=bool),
        categories=[label.category or "" for label in labels], sampled=sum(label.sampled for label in labels),
    )


def _says_something_of_the_text(label):
    return label.is_match or label.reason_code in TEXT_MISMATCH_REASONS
