import math

import numpy as np
import pytest

from clipcheck import scoring


@pytest.mark.parametrize(
    ("cosine", "expected"),
    [(-0.3, 0.0), (0.0, 0.0), (0.123456, 0.1235), (0.99999, 1.0), (1.2, 1.0), (float("nan"), 0.0)],
)
def test_similarity_score_clamps_negative_and_rounds_to_four_decimals(cosine, expected):
    assert scoring.similarity_score(cosine) == expected


@pytest.mark.parametrize(
    ("score", "threshold", "expected"),
    [
        (0.2499, 0.25, True),
        (0.25, 0.25, False),
        (0.9, 0.25, False),
        (0.0, 0.0, False),
    ],
)
def test_mismatch_is_strictly_below_threshold(score, threshold, expected):
    assert scoring.is_mismatch(score, threshold) is expected


@pytest.mark.parametrize(
    ("score", "threshold", "expected"),
    [
        (0.4001, 0.25, "high"),  # margin 0.1501
        (0.40, 0.25, "medium"),  # margin exactly 0.15 is not > 0.15
        (0.10, 0.25, "medium"),  # exactly 0.15 below
        (0.0999, 0.25, "high"),
        (0.30, 0.25, "medium"),  # exactly 0.05
        (0.2999, 0.25, "low"),
        (0.2001, 0.25, "low"),
        (0.25, 0.25, "low"),
    ],
)
def test_confidence_bands_at_their_boundaries(score, threshold, expected):
    assert scoring.confidence(score, threshold) == expected


@pytest.mark.parametrize(
    ("score", "expected"),
    [
        (1.0, "excellent"),
        (0.40, "excellent"),
        (0.3999, "good"),
        (0.30, "good"),
        (0.2999, "fair"),
        (0.25, "fair"),
        (0.2499, "poor"),
        (0.15, "poor"),
        (0.1499, "mismatch"),
        (0.0, "mismatch"),
    ],
)
def test_match_quality_bands_at_their_boundaries(score, expected):
    assert scoring.match_quality(score) == expected


def test_quality_bands_follow_settings(settings):
    settings.CLIPCHECK = {**settings.CLIPCHECK, "QUALITY_BANDS": {"same": 0.8, "different": 0.0}}
    assert scoring.match_quality(0.81) == "same"
    assert scoring.match_quality(0.79) == "different"


def test_category_score_is_one_half_at_the_threshold_and_monotonic():
    at_threshold = scoring.category_score(0.25, 0.25, logit_scale=100.0)
    above = scoring.category_score(0.28, 0.25, logit_scale=100.0)
    below = scoring.category_score(0.22, 0.25, logit_scale=100.0)
    assert at_threshold == 0.5
    assert below < 0.5 < above
    assert scoring.category_score(5.0, 0.0, logit_scale=1000.0) == 1.0  # no overflow


def test_verdict_has_the_contract_fields():
    assert scoring.verdict(0.31, 0.25) == {
        "is_mismatch": False,
        "similarity_score": 0.31,
        "threshold_used": 0.25,
        "confidence": "medium",
        "match_quality": "good",
    }


@pytest.mark.parametrize("threshold", [0.25, None])
def test_bands_at_the_default_threshold_are_the_guides_table(threshold):
    assert scoring.band_bounds(threshold) == pytest.approx(
        {"excellent": 0.40, "good": 0.30, "fair": 0.25, "poor": 0.15, "mismatch": 0.0}
    )


def test_bands_move_with_the_threshold():
    assert scoring.match_quality(0.70, 0.7121) == "poor"  # a mismatch at the calibrated threshold
    assert scoring.match_quality(0.7121, 0.7121) == "fair"
    assert scoring.match_quality(0.80, 0.7121) == "excellent"
    assert scoring.match_quality(0.45, 0.5) == "poor"


def test_bands_never_contradict_the_verdict_for_any_threshold():
    """Property over 300 thresholds x 401 scores, the edges included."""
    rng = np.random.default_rng(0)
    thresholds = np.concatenate([[0.0, 0.0001, 0.25, 0.5, 0.7121, 0.9999, 1.0], rng.uniform(0, 1, 293)])
    matching, not_matching = {"excellent", "good", "fair"}, {"poor", "mismatch"}
    for threshold in thresholds:
        threshold = round(float(threshold), 4)
        scores = np.concatenate([np.linspace(0, 1, 395), [threshold, max(threshold - 0.0001, 0.0),
                                                             min(threshold + 0.0001, 1.0), 0.0, 1.0, 0.5]])
        for score in scores:
            score = round(float(score), 4)
            verdict = scoring.verdict(score, threshold)
            expected = not_matching if verdict["is_mismatch"] else matching
            assert verdict["match_quality"] in expected, (score, threshold, verdict)


def test_a_sigmoid_models_probability_is_its_own_logistic_of_scale_times_cosine_plus_bias():
    # SigLIP base's own figures: logit_scale about 117, logit_bias about -12.9.
    assert scoring.sigmoid_probability(12.9 / 117.3, 117.3, -12.9) == 0.5
    assert scoring.sigmoid_probability(0.15, 117.3, -12.9) == round(1 / (1 + math.exp(-(117.3 * 0.15 - 12.9))), 4)
    assert scoring.sigmoid_probability(0.15, 117.3, -12.9) > 0.99 > 0.01 > scoring.sigmoid_probability(0.05, 117.3, -12.9)
    # A negative cosine is not clamped first (the score is; the probability is of the cosine).
    assert scoring.sigmoid_probability(-0.2, 10.0, 1.0) < scoring.sigmoid_probability(0.0, 10.0, 1.0)
    assert scoring.sigmoid_probability(float("nan"), 10.0, 1.0) == 0.0
    assert scoring.sigmoid_probability(1e9, 10.0, 1.0) == 1.0
