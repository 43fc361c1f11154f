"""Zero-shot classification of an image over category prompts."""

import numpy as np

from clipcheck import scoring
from clipcheck.engine import get_engine
from clipcheck.engine.admission import run_inference
from clipcheck.services.thresholds import classify_threshold
from clipcheck.settings import clip_settings


def image_classify(*, image, categories=None, top_k=None, image_embedding=None):
    """Zero-shot classification of a decoded image over ``categories``.

    Each category gets ``score`` (independent, 0.5 at its classify
    threshold, ``classify_threshold``; meaningful for a single category), ``similarity`` (the
    clamped cosine) and ``probability`` (softmax over the given categories).
    A caller that already holds the image's embedding passes it to skip the
    image encode.
    """
    categories = list(categories or clip_settings.CATEGORIES)
    top_k = min(top_k or clip_settings.DEFAULT_TOP_K, len(categories))
    thresholds = _classify_thresholds(categories)
    engine = get_engine()
    prompts = _prompts(categories)

    def embed():
        vector = engine.encode_images([image.image])[0] if image_embedding is None else image_embedding
        return vector, engine.encode_texts(prompts)[0]

    image_embedding, prompt_embeddings = run_inference(embed)
    return _category_matches(
        categories=categories, thresholds=thresholds, prompt_embeddings=prompt_embeddings,
        image_embedding=image_embedding, logit_scale=engine.logit_scale, top_k=top_k,
    )


def images_classify(*, image_embeddings, categories=None, top_k=None):
    """``image_classify`` for many images whose embeddings the caller holds: one
    list of matches per embedding, in order. The prompts are encoded and the
    thresholds looked up once for all of them (a batch's mismatch reasons)."""
    image_embeddings = list(image_embeddings)
    if not image_embeddings:
        return []
    categories = list(categories or clip_settings.CATEGORIES)
    top_k = min(top_k or clip_settings.DEFAULT_TOP_K, len(categories))
    thresholds = _classify_thresholds(categories)
    engine = get_engine()
    prompts = _prompts(categories)
    prompt_embeddings = run_inference(lambda: engine.encode_texts(prompts)[0])
    return [
        _category_matches(
            categories=categories, thresholds=thresholds, prompt_embeddings=prompt_embeddings,
            image_embedding=image_embedding, logit_scale=engine.logit_scale, top_k=top_k,
        )
        for image_embedding in image_embeddings
    ]


def _classify_thresholds(categories):
    # Prompts like "a photo of a shoe." sit on another scale than product
    # texts: each category's score is centred on its classify threshold.
    return [classify_threshold(category=category) for category in categories]


def _prompts(categories):
    return [clip_settings.PROMPT_TEMPLATE.format(category) for category in categories]


def _category_matches(*, categories, thresholds, prompt_embeddings, image_embedding, logit_scale, top_k):
    """The matches of one image embedding, best first (the top ``top_k``)."""
    cosines = prompt_embeddings @ image_embedding
    logits = logit_scale * cosines
    probabilities = np.exp(logits - logits.max())
    probabilities /= probabilities.sum()
    matches = [
        {
            "category": category,
            "score": scoring.category_score(float(cosine), threshold, logit_scale),
            "similarity": scoring.similarity_score(float(cosine)),
            "probability": round(float(probability), 4),
        }
        for category, cosine, probability, threshold in zip(categories, cosines, probabilities, thresholds)
    ]
    order = np.argsort(-cosines, kind="stable")
    return [matches[index] for index in order[:top_k]]
