"""Drift figures (clipcheck.drift): score PSI, the overturn rate's interval, the mean embedding's shift."""

import numpy as np

from clipcheck import drift


def window(scores=(), decisions=0, overturns=0, embeddings=()):
    category = drift.CategoryWindow(scores=list(scores), decisions=decisions, overturns=overturns)
    for vector in embeddings:
        category.add_embedding(vector)
    return category


def test_psi_is_zero_for_the_same_distribution_and_large_for_a_moved_one():
    rng = np.random.default_rng(0)
    reference = drift.score_histogram(rng.normal(0.8, 0.05, 2000))
    assert drift.population_stability(drift.score_histogram(rng.normal(0.8, 0.05, 2000)), reference) < 0.05
    assert drift.population_stability(drift.score_histogram(rng.normal(0.6, 0.05, 2000)), reference) > 1.0


def test_a_stable_window_raises_no_alarm_and_a_small_one_is_not_judged():
    rng = np.random.default_rng(1)
    vectors = rng.normal(size=(200, 8)) + 5
    reference = window(rng.normal(0.8, 0.05, 500), decisions=200, overturns=10, embeddings=vectors).as_reference()
    stable = drift.category_drift(
        window(rng.normal(0.8, 0.05, 300), decisions=100, overturns=6, embeddings=vectors[:100]), reference,
    )
    assert stable["alarms"] == [] and stable["psi"] < 0.1 and stable["embedding_shift"] < 0.01
    small = drift.category_drift(window([0.1] * 5, decisions=5, overturns=5, embeddings=vectors[:5]), reference)
    assert small["alarms"] == [] and "psi" not in small and "overturn_rate" not in small


def test_moved_scores_more_overturns_and_other_photos_each_raise_their_alarm():
    rng = np.random.default_rng(2)
    vectors = rng.normal(size=(200, 8)) + 5
    reference = window(rng.normal(0.8, 0.05, 500), decisions=200, overturns=10, embeddings=vectors).as_reference()
    moved = drift.category_drift(
        window(rng.normal(0.55, 0.05, 300), decisions=100, overturns=40, embeddings=-vectors[:100]), reference,
    )
    alarms = " | ".join(moved["alarms"])
    assert "scores moved" in alarms and "moderators overturn more: 40 of 100" in alarms and "photos moved" in alarms
