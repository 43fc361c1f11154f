"""Near-duplicate detection on known answers, through the production path.

Photos of the known-answer domain (every shape in every colour, two photos of
each) are the catalogue; each is copied four ways (JPEG quality 60-95,
resized 0.5-1.5x, cropped by up to 10%, mirrored) and every copy is looked up
with ``near_duplicates`` (what the photo_reused reason and clip_duplicates
use), under the thresholds measured for this checkpoint (bench/duplicates.py).
"""

import pytest

from bench.duplicates import KNOWN_ANSWER_NEAR_DUPLICATE, copies, detection_rates, originals
from clipcheck.services.thresholds import model_id
from tests.support.known_answer import KNOWN_ANSWER_MODEL


@pytest.fixture
def known_answer_duplicates(settings, fresh_engine):
    settings.CLIPCHECK = {"MODEL": str(KNOWN_ANSWER_MODEL), "DEVICE": "cpu", **KNOWN_ANSWER_NEAR_DUPLICATE}


@pytest.mark.django_db
def test_copies_are_found_and_other_photos_of_the_same_kind_are_not(known_answer_duplicates):
    photos = originals(photos_per_kind=2)
    copied = copies(photos)

    rates = detection_rates(photos=photos, copied=copied, model=model_id())

    print(rates.as_dict())
    assert rates.copies == 4 * len(photos) == 384
    assert rates.found >= 0.95
    assert rates.same_kind <= 0.02
    assert rates.other <= 0.01
    # Re-encoding, resizing and mirroring keep the picture; crops are the hard case.
    assert rates.found_by_kind["jpeg"] == rates.found_by_kind["resize"] == rates.found_by_kind["mirror"] == 1.0


@pytest.mark.django_db
def test_embeddings_alone_would_confuse_photos_of_the_same_kind(known_answer_duplicates, settings):
    # Why the layout check exists: without it the same measure reports most
    # other photos of the same shape and colour as copies.
    settings.CLIPCHECK = {**settings.CLIPCHECK, "NEAR_DUPLICATE_LAYOUT": 0.0}
    photos = originals(photos_per_kind=2)[:24]

    rates = detection_rates(photos=photos, copied=copies(photos), model=model_id())

    assert rates.found >= 0.95
    assert rates.same_kind > 0.5
