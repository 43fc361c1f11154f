"""Pure verdict rules shared by the API, the admin and the audit."""

import math

from clipcheck.settings import clip_settings


def similarity_score(cosine):
    """Cosine similarity → the reported score: clamped to [0, 1], 4 decimals."""
    if not math.isfinite(cosine):
        return 0.0
    return round(min(max(cosine, 0.0), 1.0), 4)


def is_mismatch(score, threshold):
    return score < threshold


def confidence(score, threshold, margins=None):
    margins = margins or clip_settings.CONFIDENCE_MARGINS
    # Rounded so that a margin of exactly 0.15 is not 0.15000000000000002.
    margin = round(abs(score - threshold), 6)
    if margin > margins["HIGH"]:
        return "high"
    if margin >= margins["MEDIUM"]:
        return "medium"
    return "low"


# How sure the verdict is, from the match probability of an active
# adaptation: the probability of the verdict given (match: p, mismatch: 1 - p).
PROBABILITY_CONFIDENCE = (("high", 0.9), ("medium", 0.7))


def confidence_from_probability(match_probability, is_mismatch):
    """``confidence`` where a calibrated match probability exists: how likely the verdict is
    right. A probability that disagrees with the verdict (p > 0.5 on a mismatch) is "low"."""
    verdict_probability = 1.0 - match_probability if is_mismatch else match_probability
    for label, bound in PROBABILITY_CONFIDENCE:
        if verdict_probability >= bound:
            return label
    return "low"


def quality_bands(bands=None, threshold=None):
    """``(label, lower bound)`` of the quality bands at ``threshold``, best band first."""
    return sorted(band_bounds(threshold, bands).items(), key=lambda band: -band[1])


def band_bounds(threshold=None, bands=None, reference=None):
    """The lower bounds of the quality bands in force at ``threshold``.

    ``QUALITY_BANDS`` are written for the reference threshold
    ``QUALITY_BANDS_THRESHOLD`` (0.25, where they are the guide's table).
    For another threshold the bounds are moved with it: bounds at or above
    the reference are mapped linearly from [reference, 1] onto
    [threshold, 1], bounds below it from [0, reference] onto [0, threshold].
    The band starting at the reference therefore starts at the threshold,
    so a mismatch (score < threshold) only ever gets a band below it and a
    match only a band from it up, whatever the threshold.
    """
    bands = bands or clip_settings.QUALITY_BANDS
    reference = float(clip_settings.QUALITY_BANDS_THRESHOLD if reference is None else reference)
    threshold = reference if threshold is None else float(threshold)
    moved = {}
    for label, bound in bands.items():
        if bound >= reference:
            span = 1.0 - reference
            moved[label] = threshold + (bound - reference) * (1.0 - threshold) / span if span > 0 else threshold
        else:
            moved[label] = bound * threshold / reference
    return moved


def match_quality(score, threshold=None, bands=None):
    """The quality band of ``score`` relative to ``threshold`` (see ``band_bounds``)."""
    ordered = quality_bands(bands, threshold)
    for label, lower_bound in ordered:
        if score >= lower_bound:
            return label
    return min(ordered, key=lambda band: band[1])[0]


def verdict(score, threshold):
    """The analyze result fields derived from a score and a threshold."""
    return {
        "is_mismatch": is_mismatch(score, threshold),
        "similarity_score": score,
        "threshold_used": threshold,
        "confidence": confidence(score, threshold),
        "match_quality": match_quality(score, threshold),
    }


def category_score(cosine, threshold, logit_scale):
    """Probability-like score that one category applies, judged on its own.

    A softmax over a single label is always 1.0, so each category is scored
    independently: the logistic of the model's own temperature times the
    distance of the cosine from the mismatch threshold. A category whose
    similarity sits at the threshold scores 0.5; above it, > 0.5.
    """
    exponent = logit_scale * (cosine - threshold)
    exponent = max(min(exponent, 60.0), -60.0)
    return round(1.0 / (1.0 + math.exp(-exponent)), 4)


def sigmoid_probability(cosine, logit_scale, logit_bias):
    """A sigmoid-trained model's own probability that an image and a text match (SigLIP):
    ``sigmoid(logit_scale * cosine + logit_bias)``, 4 decimals (docs/models.md)."""
    if not math.isfinite(cosine):
        return 0.0
    exponent = max(min(logit_scale * cosine + logit_bias, 60.0), -60.0)
    return round(1.0 / (1.0 + math.exp(-exponent)), 4)
