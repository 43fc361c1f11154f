"""Business logic of the /clip/* endpoints: plain functions, no HTTP.

Model computations run through ``run_inference`` (admission control and a
time budget, ``clipcheck.engine.admission``).
"""

import numpy as np

from clipcheck import scoring
from clipcheck.engine import get_engine
from clipcheck.engine.admission import run_inference
from clipcheck.errors import BatchUnavailable, ClipcheckError
from clipcheck.images import decode_image, read_batch_file
from clipcheck.settings import clip_settings


def default_threshold():
    return float(clip_settings.THRESHOLD)


def analyze_pair(*, image, text, threshold=None):
    """Score one decoded image against one text and return the verdict."""
    threshold = default_threshold() if threshold is None else threshold
    engine = get_engine()

    def embed():
        image_embeddings = engine.encode_images([image.image])
        text_embeddings, truncated = engine.encode_texts([text])
        return image_embeddings[0], text_embeddings[0], truncated[0]

    image_embedding, text_embedding, text_truncated = run_inference(embed)
    return _pair_result(image_embedding, text_embedding, text_truncated, threshold)


def _pair_result(image_embedding, text_embedding, text_truncated, threshold):
    score = scoring.similarity_score(float(np.dot(image_embedding, text_embedding)))
    return {**scoring.verdict(score, threshold), "text_truncated": text_truncated}


def classify_image(*, image, categories=None, top_k=None):
    """Zero-shot classification of a decoded image over ``categories``.

    Each category gets ``score`` (independent, 0.5 at the mismatch
    threshold; meaningful for a single category), ``similarity`` (the
    clamped cosine) and ``probability`` (softmax over the given categories).
    """
    categories = list(categories or clip_settings.CATEGORIES)
    top_k = min(top_k or clip_settings.DEFAULT_TOP_K, len(categories))
    threshold = default_threshold()
    engine = get_engine()
    prompts = [clip_settings.PROMPT_TEMPLATE.format(category) for category in categories]

    def embed():
        return engine.encode_images([image.image])[0], engine.encode_texts(prompts)[0]

    image_embedding, prompt_embeddings = run_inference(embed)
    cosines = prompt_embeddings @ image_embedding
    logits = engine.logit_scale * cosines
    probabilities = np.exp(logits - logits.max())
    probabilities /= probabilities.sum()
    matches = [
        {
            "category": category,
            "score": scoring.category_score(float(cosine), threshold, engine.logit_scale),
            "similarity": scoring.similarity_score(float(cosine)),
            "probability": round(float(probability), 4),
        }
        for category, cosine, probability in zip(categories, cosines, probabilities)
    ]
    order = np.argsort(-cosines, kind="stable")
    return [matches[index] for index in order[:top_k]]


def analyze_batch(*, items):
    """Score server-side images against texts, in input order.

    ``items`` are dicts with ``image_path``, ``text`` and optional
    ``threshold``, or an ``error`` already found by validation. A bad item
    gets its own ``error`` entry; the others are unaffected. Items are
    decoded and encoded ``BATCH_SIZE`` at a time so memory stays bounded.
    """
    if not clip_settings.BATCH_ROOT:
        raise BatchUnavailable("Batch analysis is disabled: CLIPCHECK BATCH_ROOT is not configured.")
    engine = get_engine()
    results = [None] * len(items)
    batch_size = int(clip_settings.BATCH_SIZE)
    for start in range(0, len(items), batch_size):
        decoded = []
        for index in range(start, min(start + batch_size, len(items))):
            item = items[index]
            if "error" in item:
                results[index] = {"image_path": item.get("image_path"), "error": item["error"]}
                continue
            try:
                image = decode_image(read_batch_file(item["image_path"]))
            except ClipcheckError as exc:
                results[index] = {"image_path": item["image_path"], "error": exc.as_dict()}
                continue
            decoded.append((index, item, image))
        if not decoded:
            continue
        images = [image.image for _, _, image in decoded]
        texts = [item["text"] for _, item, _ in decoded]
        image_embeddings, (text_embeddings, truncated) = run_inference(
            lambda: (engine.encode_images(images), engine.encode_texts(texts))
        )
        for row, (index, item, _) in enumerate(decoded):
            threshold = item.get("threshold")
            threshold = default_threshold() if threshold is None else threshold
            result = _pair_result(image_embeddings[row], text_embeddings[row], truncated[row], threshold)
            results[index] = {"image_path": item["image_path"], **result}
    return results
