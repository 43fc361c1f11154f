"""Image embeddings: computed once per image and model, then reused."""

import numpy as np

from clipcheck import selectors
from clipcheck.engine import get_engine
from clipcheck.engine.admission import run_inference
from clipcheck.models import ImageEmbedding
from clipcheck.services.thresholds import model_id


def image_embeddings_compute(*, images, model=None, engine=None, store=True):
    """Embeddings of decoded images, in order: stored ones are reused, the
    others are encoded in one ``encode_images`` call and stored (unless
    ``store`` is false)."""
    model = model or model_id()
    stored = selectors.image_embeddings_get(hashes=[image.sha256 for image in images], model=model)
    missing = {image.sha256: image for image in images if image.sha256 not in stored}
    if missing:
        engine = engine or get_engine()
        pictures = [image.image for image in missing.values()]
        vectors = run_inference(lambda: engine.encode_images(pictures))
        new = dict(zip(missing, vectors))
        if store:
            image_embeddings_store(vectors=new, model=model)
        stored.update(new)
    return np.stack([stored[image.sha256] for image in images])


def image_embeddings_store(*, vectors, model):
    """Store ``{sha256: vector}``; rows another writer stored first are kept.

    The (sha256, model) unique constraint settles races: a conflicting insert
    is skipped, never duplicated, and never fails the analysis.
    """
    ImageEmbedding.objects.bulk_create(
        [
            ImageEmbedding(sha256=sha256, model=model, dim=len(vector), vector=ImageEmbedding.pack(vector))
            for sha256, vector in vectors.items()
        ],
        ignore_conflicts=True,
    )
