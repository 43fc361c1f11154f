"""Classification of an image over categories: the zero-shot prompts, or the
model's category adaptation where one is active and covers the categories
(``clip_adapt``, docs/adaptation.md)."""

import numpy as np

from clipcheck import scoring
from clipcheck.adaptation import softmax
from clipcheck.engine import get_engine
from clipcheck.engine.admission import run_inference
from clipcheck.services.adaptations import adaptation_active
from clipcheck.services.thresholds import classify_threshold
from clipcheck.settings import clip_settings


def image_classify(*, image, categories=None, top_k=None, image_embedding=None):
    """Zero-shot classification of a decoded image over ``categories``.

    Each category gets ``score`` (independent, 0.5 at its classify
    threshold, ``classify_threshold``; meaningful for a single category), ``similarity`` (the
    clamped cosine) and ``probability`` (softmax over the given categories).
    On a sigmoid-trained model (SigLIP) ``score`` is the model's own match
    probability of the prompt, ``sigmoid(logit_scale * cos + logit_bias)``:
    it needs no classify threshold (docs/models.md).
    Under an active adaptation covering the categories, ``score`` is the
    head's calibrated probability that the photo's category is this one
    (over all of the head's categories, whichever were asked for),
    ``probability`` the head's softmax over the given categories, and the
    order the head's.
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
        adaptation=_covering_adaptation(categories), logit_bias=_sigmoid_bias(engine),
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
    adaptation = _covering_adaptation(categories)
    logit_bias = _sigmoid_bias(engine)
    return [
        _category_matches(
            categories=categories, thresholds=thresholds, prompt_embeddings=prompt_embeddings,
            image_embedding=image_embedding, logit_scale=engine.logit_scale, top_k=top_k, adaptation=adaptation,
            logit_bias=logit_bias,
        )
        for image_embedding in image_embeddings
    ]


def _sigmoid_bias(engine) -> float | None:
    """The model's logit bias where it was trained with a sigmoid loss (its scores are its own); else None."""
    return engine.logit_bias if engine.model_family.sigmoid else None


def _covering_adaptation(categories):
    active = adaptation_active()
    return active if active is not None and active.covers(categories) else None


def _classify_thresholds(categories):
    # Prompts like "a photo of a shoe." sit on another scale than product
    # texts: each category's score is centred on its classify threshold.
    return [classify_threshold(category=category) for category in categories]


def _prompts(categories):
    return [clip_settings.PROMPT_TEMPLATE.format(category) for category in categories]


def _category_matches(*, categories, thresholds, prompt_embeddings, image_embedding, logit_scale, top_k,
                      adaptation=None, logit_bias=None):
    """The matches of one image embedding, best first (the top ``top_k``).

    ``logit_bias`` (a sigmoid-trained model's): scores are the model's own
    probabilities, no threshold centring."""
    cosines = prompt_embeddings @ image_embedding
    if adaptation is None and logit_bias is not None:
        scores = [scoring.sigmoid_probability(float(cosine), logit_scale, logit_bias) for cosine in cosines]
        logits = logit_scale * cosines
    elif adaptation is None:
        scores = [scoring.category_score(float(cosine), threshold, logit_scale)
                  for cosine, threshold in zip(cosines, thresholds)]
        logits = logit_scale * cosines
    else:
        # The head's probabilities over all of its categories, whichever were asked for.
        calibrated = adaptation.head.calibrated_logits(image_embedding)
        columns = [adaptation.head.categories.index(category) for category in categories]
        scores = [round(float(value), 4) for value in softmax(calibrated)[0][columns]]
        logits = calibrated[0][columns]
    probabilities = np.exp(logits - logits.max())
    probabilities /= probabilities.sum()
    matches = [
        {
            "category": category,
            "score": score,
            "similarity": scoring.similarity_score(float(cosine)),
            "probability": round(float(probability), 4),
        }
        for category, cosine, probability, score in zip(categories, cosines, probabilities, scores)
    ]
    order = np.argsort(-np.asarray(logits), kind="stable")
    return [matches[index] for index in order[:top_k]]
