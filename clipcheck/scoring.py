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


def quality_bands(bands=None):
    """``(label, lower bound)`` of the quality bands, best band first."""
    bands = bands or clip_settings.QUALITY_BANDS
    return sorted(bands.items(), key=lambda band: -band[1])


def match_quality(score, bands=None):
    ordered = quality_bands(bands)
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
        "match_quality": match_quality(score),
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
