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
    # Prompts like "a photo of a shoe." sit on another scale than product
    # texts: each category's score is centred on its classify threshold.
    thresholds = [classify_threshold(category=category) for category in categories]
    engine = get_engine()
    prompts = [clip_settings.PROMPT_TEMPLATE.format(category) for category in categories]

    def embed():
        vector = engine.encode_images([image.image])[0] if image_embedding is None else image_embedding
        return vector, engine.encode_texts(prompts)[0]

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
        for category, cosine, probability, threshold in zip(categories, cosines, probabilities, thresholds)
    ]
    order = np.argsort(-cosines, kind="stable")
    return [matches[index] for index in order[:top_k]]
