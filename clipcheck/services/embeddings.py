"""Image embeddings: computed once per image and model, then reused (and
searchable: ``clipcheck.vectors``); raw embeddings for POST /clip/embed."""

import dataclasses

import numpy as np

from clipcheck import selectors
from clipcheck.engine import get_engine
from clipcheck.engine.admission import run_inference
from clipcheck.models import ImageEmbedding
from clipcheck.nearduplicates import layout_signature
from clipcheck.services.thresholds import model_id
from clipcheck.vectors import vectors_store


def image_embeddings_compute(*, images, model=None, engine=None, store=True, known=None, run=run_inference,
                             layouts=None):
    """Embeddings of decoded images, in order: ``known`` ones ({sha256:
    vector}) and stored ones are reused, the others are encoded in one
    ``encode_images`` call and stored with their layouts (unless ``store``
    is false). ``run`` runs the model computation (admission control; a
    request's text computation passes its ``alongside``). ``layouts``
    ({sha256: layout}) are layouts the caller already computed."""
    model = model or model_id()
    hashes = [image.sha256 for image in images]
    stored = _embeddings_known_or_stored(hashes=hashes, known=known or {}, model=model)
    missing = {image.sha256: image for image in images if image.sha256 not in stored}
    if missing:
        stored.update(_embeddings_encode(
            images=missing, model=model, engine=engine, store=store, run=run, layouts=layouts or {},
        ))
    if store and len(missing) < len(set(hashes)):
        # Embeddings stored before layouts were kept get theirs now that the picture is at hand.
        image_layouts_fill(images=[image for image in images if image.sha256 not in missing], model=model)
    return np.stack([stored[image.sha256] for image in images])


def image_prepare(*, image, engine=None):
    """The decoded image with its model input (``pixels``) computed now, so
    that a batch job can preprocess in its decode threads, off the forwards' path."""
    engine = engine or get_engine()
    return dataclasses.replace(image, pixels=engine.preprocess([image.image])[0])


def _embeddings_known_or_stored(*, hashes, known, model):
    """``{sha256: vector}`` of the hashes the caller knows or the database holds."""
    unknown = [sha256 for sha256 in hashes if sha256 not in known]
    stored = selectors.image_embeddings_get(hashes=unknown, model=model) if unknown else {}
    return {**stored, **known}


def _embeddings_encode(*, images, model, engine, store, run=run_inference, layouts=None):
    """Encode ``{sha256: image}`` in one ``encode_images`` call; stored with their layouts when ``store``."""
    engine = engine or get_engine()
    pictures = [image.image if image.pixels is None else image.pixels for image in images.values()]
    vectors = dict(zip(images, run(lambda: engine.encode_images(pictures))))
    if store:
        image_embeddings_store(
            vectors=vectors, model=model,
            layouts={
                sha256: layouts[sha256] if layouts and sha256 in layouts else layout_signature(image.image)
                for sha256, image in images.items()
            },
        )
    return vectors


def image_embeddings_store(*, vectors, model, layouts=None):
    """Store ``{sha256: vector}`` (and ``{sha256: layout}``); rows another writer stored first are kept.

    The (sha256, model) unique constraint settles races: a conflicting insert
    is skipped, never duplicated, and never fails the analysis.
    """
    layouts = layouts or {}
    ImageEmbedding.objects.bulk_create(
        [
            ImageEmbedding(
                sha256=sha256, model=model, dim=len(vector), vector=ImageEmbedding.pack(vector),
                layout=ImageEmbedding.pack(layouts[sha256]) if sha256 in layouts else None,
            )
            for sha256, vector in vectors.items()
        ],
        ignore_conflicts=True,
    )
    # Searchable too (a copy in pgvector's index where the database has one).
    vectors_store(vectors=vectors, model=model)


def image_layouts_fill(*, images, model):
    """Store the layouts of decoded images whose stored embedding has none."""
    lacking = selectors.image_hashes_without_layout(hashes=[image.sha256 for image in images], model=model)
    for image in {image.sha256: image for image in images if image.sha256 in lacking}.values():
        ImageEmbedding.objects.filter(sha256=image.sha256, model=model, layout__isnull=True).update(
            layout=ImageEmbedding.pack(layout_signature(image.image))
        )


def embeddings_compute(*, texts=(), images=()):
    """Normalised CLIP embeddings of texts and decoded images (nothing stored):
    ``{"model", "dim", "texts": [...], "images": [...]}`` in input order (POST /clip/embed)."""
    engine = get_engine()
    model = model_id()
    text_vectors, truncated = run_inference(lambda: engine.encode_texts(list(texts))) if texts else ([], [])
    image_vectors = image_embeddings_compute(images=list(images), model=model, engine=engine, store=False) if images else []
    return {
        "model": model,
        "dim": int(engine.embedding_dim),
        "texts": [
            {"text": text, "embedding": _rounded(vector), "text_truncated": bool(cut)}
            for text, vector, cut in zip(texts, text_vectors, truncated)
        ],
        "images": [{"sha256": image.sha256, "embedding": _rounded(vector)} for image, vector in zip(images, image_vectors)],
    }


def _rounded(vector):
    # float32 carries about 7 significant digits.
    return [round(float(value), 7) for value in vector]
